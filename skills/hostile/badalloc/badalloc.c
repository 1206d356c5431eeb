/* No SDK: an allocator that returns a pointer outside memory. */
__attribute__((export_name("vak_alloc"))) unsigned vak_alloc(unsigned size) { (void)size; return 0xFFFFFFF0u; }
__attribute__((export_name("execute"))) unsigned long long execute(unsigned p, unsigned n) { (void)p; (void)n; return 0; }
