/* Writes 100 MB to stdout. */
#include <stdio.h>
#include <string.h>
int main(void) {
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 1600; i++) {
        if (fwrite(chunk, 1, sizeof chunk, stdout) != sizeof chunk) { return 4; }
    }
    return 0;
}
