/* Hands a host function text that is not UTF-8. */
__attribute__((import_module("sluice"), import_name("log")))
void sluice_log(int level, const char *ptr, int len);
static const char bad[] = {(char)0xff, (char)0xfe, 'x'};
int main(void) {
  sluice_log(1, bad, 3);
  return 0;
}
