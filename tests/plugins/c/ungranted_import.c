/* Imports a host function of a capability the task does not grant. */
__attribute__((import_module("sluice"), import_name("clickhouse_query")))
int clickhouse_query(int connection, int sql);
int main(void) { return clickhouse_query(0, 0); }
