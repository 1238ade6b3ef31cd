// LD_PRELOAD shim (bench/as_avx2.py builds and loads it): the process sees an x86-64 CPU without AVX-512, VNNI,
// bf16 or AMX, i.e. an AVX2-only one, so every library that picks its kernels from CPUID (PyTorch's ATen and
// oneDNN, MKL, ONNX Runtime's MLAS) picks its AVX2 ones. Linux CPUID faulting (arch_prctl ARCH_SET_CPUID, the
// cpuid_fault flag) makes each CPUID trap to SIGSEGV; the handler runs the real one and clears those bits.
// Kernel choices made before the constructor runs (glibc's string functions) keep the real CPU's.
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static void on_segv(int sig, siginfo_t *info, void *raw) {
    ucontext_t *ctx = raw;
    greg_t *r = ctx->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {  // a real crash: default action on return
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, a, b, c, d);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        c &= ~((1u << 1) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 14));
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        a &= ~((1u << 4) | (1u << 5) | (1u << 23));  // AVX-VNNI, AVX512-BF16, AVX-IFMA
        d &= ~((1u << 4) | (1u << 5) | (1u << 19));  // AVX-VNNI-INT8, AVX-NE-CONVERT, AVX10
    }
    r[REG_RAX] = a; r[REG_RBX] = b; r[REG_RCX] = c; r[REG_RDX] = d;
    r[REG_RIP] += 2;
    (void)sig; (void)info;
}

__attribute__((constructor)) static void mask_cpuid(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0)
        fprintf(stderr, "cpuid_mask: CPUID faulting is not available here (no cpuid_fault flag)\n");
}
