/* Tries to read a host file it was not granted. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    FILE *file = fopen("/etc/passwd", "r");
    if (file == NULL) {
        fprintf(stderr, "denied: %s\n", strerror(errno));
        return 3;
    }
    char line[256];
    if (fgets(line, sizeof line, file)) { fprintf(stderr, "read: %s", line); }
    return 0;
}
