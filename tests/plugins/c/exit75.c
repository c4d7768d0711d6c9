/* Asks to be retried (EX_TEMPFAIL). */
#include <stdio.h>
int main(void) {
    fprintf(stderr, "upstream not ready, try again\n");
    return 75;
}
