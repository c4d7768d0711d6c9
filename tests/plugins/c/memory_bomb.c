/* Allocates and touches memory until something stops it. The volatile sink keeps the
 * compiler from eliding allocations that are never read. */
#include <stdlib.h>
char *volatile sink;
int main(void) {
    for (;;) {
        char *block = malloc(1 << 20);
        if (block == NULL) { return 2; }
        for (int i = 0; i < (1 << 20); i += 4096) { ((volatile char *)block)[i] = 1; }
        sink = block;
    }
}
