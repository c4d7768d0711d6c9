/* Tries every way WASI preview 1 offers to reach a socket: accepting on, sending to and
 * receiving from any descriptor 0..63. All must be refused; prints what each returned. */
#include <stdio.h>
#include <wasi/api.h>

int main(void) {
    int reached = 0;
    for (int fd = 0; fd < 64; fd++) {
        __wasi_fd_t accepted;
        if (__wasi_sock_accept(fd, 0, &accepted) == 0) reached++;
        char byte = 'x';
        __wasi_ciovec_t out = {(const uint8_t *)&byte, 1};
        __wasi_size_t sent;
        if (__wasi_sock_send(fd, &out, 1, 0, &sent) == 0) reached++;
        __wasi_iovec_t in = {(uint8_t *)&byte, 1};
        __wasi_size_t got;
        __wasi_roflags_t flags;
        if (__wasi_sock_recv(fd, &in, 1, 0, &got, &flags) == 0) reached++;
    }
    printf("{\"sockets_reached\": %d}\n", reached);
    return 0;
}
