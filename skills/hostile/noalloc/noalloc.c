/* No SDK: memory and a tool export, but no vak_alloc. */
__attribute__((export_name("execute"))) unsigned long long execute(unsigned p, unsigned n) { return ((unsigned long long)p << 32) | n; }
