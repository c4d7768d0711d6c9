/* Panics: a message on stderr, then a trap. */
#include <stdio.h>
int main(void) {
    fprintf(stderr, "panicked at 'index out of bounds'\n");
    fflush(stderr);
    __builtin_trap();
}
