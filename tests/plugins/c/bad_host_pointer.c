/* Hands a host function a pointer past the end of its memory. */
__attribute__((import_module("sluice"), import_name("log")))
void sluice_log(int level, int ptr, int len);
int main(void) {
  sluice_log(1, 0x7ffffff0, 100);
  return 0;
}
