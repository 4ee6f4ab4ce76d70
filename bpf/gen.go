package bpf

// Regenerate relay_bpfel.{go,o} after changing xdp.c or a header (make
// generate). The outputs are committed so that building needs no clang;
// TestGeneratedUpToDate runs this very directive again and compares bytes.
// bpf2go maps the source directory out of the debug info, so the output does
// not depend on where the checkout lives.
//
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type binding_key -type binding_value -type rewrite -type next_hop -type reason relay xdp.c
