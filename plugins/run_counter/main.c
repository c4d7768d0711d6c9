/*
 * run_counter: counts the runs of its DAG in the DAG's key-value store (capability `kv`)
 * and outputs {"runs": N}. Written in C against the raw host ABI (no SDK) to show the ABI
 * is language-neutral: calls that return data answer a status n (>= 0: n bytes of JSON
 * waiting; < 0: -n bytes of {"error": ..., "retryable": ...} waiting), fetched with
 * result_read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))

IMPORT("log") void sluice_log(int level, const char *msg, size_t len);
IMPORT("kv_get") long long sluice_kv_get(const char *key, size_t key_len);
IMPORT("kv_put") long long sluice_kv_put(const char *key, size_t key_len, const char *value, size_t value_len);
IMPORT("result_read") int sluice_result_read(char *buf, size_t len);

static const char KEY[] = "run_counter.runs";

/* Copies the waiting answer into a fresh NUL-terminated buffer. */
static char *take_answer(long long status) {
    size_t len = (size_t)(status < 0 ? -status : status);
    char *buf = calloc(len + 1, 1);
    if (buf == NULL) exit(75);
    if (len > 0) sluice_result_read(buf, len);
    return buf;
}

static void info(const char *msg) { sluice_log(2, msg, strlen(msg)); }

int main(void) {
    /* Drain the context from stdin: this plugin needs nothing from it. */
    char chunk[4096];
    while (fread(chunk, 1, sizeof chunk, stdin) > 0) {
    }

    long long status = sluice_kv_get(KEY, strlen(KEY));
    char *answer = take_answer(status);
    if (status < 0) {
        fprintf(stderr, "kv_get failed: %s\n", answer);
        return strstr(answer, "\"retryable\":true") ? 75 : 1;
    }
    /* The answer is JSON: a number, or null before the first run. */
    long long runs = strcmp(answer, "null") == 0 ? 0 : strtoll(answer, NULL, 10);
    free(answer);
    runs += 1;

    char value[32];
    int n = snprintf(value, sizeof value, "%lld", runs);
    status = sluice_kv_put(KEY, strlen(KEY), value, (size_t)n);
    answer = take_answer(status);
    if (status < 0) {
        fprintf(stderr, "kv_put failed: %s\n", answer);
        return strstr(answer, "\"retryable\":true") ? 75 : 1;
    }
    free(answer);

    char line[64];
    snprintf(line, sizeof line, "run number %lld of this DAG", runs);
    info(line);
    printf("{\"runs\": %lld}\n", runs);
    return 0;
}
