/* Reads /in/input.txt, writes /out/result.txt with what it read, and reports what it saw:
 * the file's content, whether the write worked, and the variable GREETING. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char content[64] = "";
    FILE *in = fopen("/in/input.txt", "r");
    if (in) {
        size_t n = fread(content, 1, sizeof content - 1, in);
        content[n] = 0;
        content[strcspn(content, "\n")] = 0;
        fclose(in);
    }
    int wrote = 0;
    FILE *out = fopen("/out/result.txt", "w");
    if (out) {
        wrote = fprintf(out, "seen: %s\n", content) > 0;
        wrote = (fclose(out) == 0) && wrote;
    }
    const char *greeting = getenv("GREETING");
    const char *home = getenv("HOME");
    printf("{\"read\": \"%s\", \"wrote\": %s, \"greeting\": \"%s\", \"home\": %s}\n", content,
           wrote ? "true" : "false", greeting ? greeting : "", home ? "\"set\"" : "null");
    return 0;
}
