/* Never ends: the volatile write keeps the compiler from deleting the loop. */
int main(void) {
    volatile unsigned long counter = 0;
    for (;;) { counter++; }
}
