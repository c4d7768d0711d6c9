/* Imports a socket-opening call some runtimes add to WASI preview 1 (WasmEdge's sock_open):
 * Sluice provides no such function, so the plugin must not even instantiate. */
__attribute__((import_module("wasi_snapshot_preview1"), import_name("sock_open")))
int sock_open(int family, int type, int *fd);
int main(void) {
    int fd;
    return sock_open(2, 1, &fd);
}
