// LD_PRELOAD shim (bench/as_avx2.py builds and loads it): the process sees an x86-64 CPU without AVX-512, VNNI,
// bf16 or AMX, i.e. an AVX2-only one, so every library that picks its kernels from CPUID (PyTorch's ATen and
// oneDNN, MKL, ONNX Runtime's MLAS) picks its AVX2 ones. Linux CPUID faulting (arch_prctl ARCH_SET_CPUID, the
// cpuid_fault flag) makes each CPUID trap to SIGSEGV; the handler runs the real one and clears those bits.
// Kernel choices made before the constructor runs (glibc's string functions) keep the real CPU's.
// SIGSEGV handlers the program installs later (PyTorch's DataLoader workers, Python's faulthandler) are chained
// behind this one, as JVMs chain signal handlers: sigaction()/signal() for SIGSEGV are recorded, not installed.
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction chained;  // the program's own SIGSEGV disposition (SIG_DFL until it sets one)
static int active;

static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    if (leaf == 7 && sub == 0) {
        *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        *c &= ~((1u << 1) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 14));
        *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        *a &= ~((1u << 4) | (1u << 5) | (1u << 23));  // AVX-VNNI, AVX512-BF16, AVX-IFMA
        *d &= ~((1u << 4) | (1u << 5) | (1u << 19));  // AVX-VNNI-INT8, AVX-NE-CONVERT, AVX10
    }
}

static void on_segv(int sig, siginfo_t *info, void *raw) {
    greg_t *r = ((ucontext_t *)raw)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    // a trapped CPUID arrives as a general-protection fault (SI_KERNEL) at the instruction 0F A2
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
        unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        __cpuid_count(leaf, sub, a, b, c, d);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        mask(leaf, sub, &a, &b, &c, &d);
        r[REG_RAX] = a; r[REG_RBX] = b; r[REG_RCX] = c; r[REG_RDX] = d;
        r[REG_RIP] += 2;
        return;
    }
    // a real fault: the program's handler, else the default action (the process dies with SIGSEGV)
    if (chained.sa_flags & SA_SIGINFO) {
        chained.sa_sigaction(sig, info, raw);
    } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN) {
        chained.sa_handler(sig);
    } else {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
        raise(SIGSEGV);
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !active) return real_sigaction(sig, act, old);
    if (old) *old = chained;
    if (act) chained = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

__attribute__((constructor)) static void mask_cpuid(void) {
    struct sigaction sa;
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    memset(&chained, 0, sizeof chained);
    chained.sa_handler = SIG_DFL;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    real_sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0)
        fprintf(stderr, "cpuid_mask: CPUID faulting is not available here (no cpuid_fault flag)\n");
    else
        active = 1;
}
