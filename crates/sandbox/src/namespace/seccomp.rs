//! The sandbox's seccomp filter: a deny-list, written as classic BPF by hand (it is short), that
//! answers `EPERM` for what a sandbox never needs — kernel modules, kexec, reboot, swap, every
//! mount API, `pivot_root`, `setns`, new namespaces from `unshare`/`clone`, handle-based opens,
//! BPF, perf, kernel keyrings, accounting, clock setting, the kernel log, port I/O,
//! `userfaultfd`, quotas, `io_uring` — and `ENOSYS` for `clone3` (its flags sit behind a pointer
//! a filter cannot read, and libc falls back to `clone`, whose flags it can). x32 syscalls get
//! `EPERM`; any other architecture (32-bit `int 0x80`) kills the process. `ptrace` stays allowed.
//!
//! The filter is built in the parent before fork; the child only hands it to the kernel.

/// `struct seccomp_data` offsets.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// Low 32 bits of `args[0]` (little-endian).
const OFFSET_ARG0_LOW: u32 = 16;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Namespace flags `clone` must not carry (`CLONE_NEWTIME` is an exit-signal bit for `clone`).
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;
/// …and `unshare` must not carry.
const UNSHARE_NS_FLAGS: u32 = CLONE_NS_FLAGS | 0x80; // CLONE_NEWTIME

/// Syscalls refused with `EPERM`.
pub(crate) const DENIED: &[(i64, &str)] = &[
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_kexec_file_load, "kexec_file_load"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_swapon, "swapon"),
    (libc::SYS_swapoff, "swapoff"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsconfig, "fsconfig"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_fspick, "fspick"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_open_tree, "open_tree"),
    (libc::SYS_mount_setattr, "mount_setattr"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_acct, "acct"),
    (libc::SYS_settimeofday, "settimeofday"),
    (libc::SYS_clock_settime, "clock_settime"),
    (libc::SYS_adjtimex, "adjtimex"),
    (libc::SYS_clock_adjtime, "clock_adjtime"),
    (libc::SYS_syslog, "syslog"),
    (libc::SYS_iopl, "iopl"),
    (libc::SYS_ioperm, "ioperm"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_quotactl, "quotactl"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
    (libc::SYS_lookup_dcookie, "lookup_dcookie"),
    (libc::SYS_uselib, "uselib"),
    (libc::SYS_vhangup, "vhangup"),
    (libc::SYS_nfsservctl, "nfsservctl"),
    (libc::SYS__sysctl, "_sysctl"),
];

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program.
pub(crate) fn filter() -> Vec<libc::sock_filter> {
    let mut program = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_EPERM),
    ];
    for &(nr, _) in DENIED {
        program.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        program.push(stmt(BPF_RET_K, RET_EPERM));
    }
    program.push(jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    program.push(stmt(BPF_RET_K, RET_ENOSYS));
    for (nr, flags) in [(libc::SYS_clone, CLONE_NS_FLAGS), (libc::SYS_unshare, UNSHARE_NS_FLAGS)] {
        // if nr matches: load arg0, refuse when any namespace flag is set, else allow.
        program.push(jump(BPF_JEQ_K, nr as u32, 0, 4));
        program.push(stmt(BPF_LD_W_ABS, OFFSET_ARG0_LOW));
        program.push(jump(BPF_JSET_K, flags, 0, 1));
        program.push(stmt(BPF_RET_K, RET_EPERM));
        program.push(stmt(BPF_RET_K, RET_ALLOW));
    }
    program.push(stmt(BPF_RET_K, RET_ALLOW));
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset of classic BPF the filter uses.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = program[pc];
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => {
                    let at = insn.k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                BPF_JEQ_K => pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf }),
                BPF_JGE_K => pc += usize::from(if acc >= insn.k { insn.jt } else { insn.jf }),
                BPF_JSET_K => pc += usize::from(if acc & insn.k != 0 { insn.jt } else { insn.jf }),
                BPF_RET_K => return insn.k,
                other => panic!("unexpected opcode {other}"),
            }
        }
    }

    #[test]
    fn denies_the_list_and_allows_the_rest() {
        let program = filter();
        assert!(program.len() < 4096);
        for &(nr, name) in DENIED {
            assert_eq!(run(&program, AUDIT_ARCH_X86_64, nr as u32, 0), RET_EPERM, "{name}");
        }
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_ptrace, libc::SYS_execve, libc::SYS_openat] {
            assert_eq!(run(&program, AUDIT_ARCH_X86_64, nr as u32, 0), RET_ALLOW, "{nr}");
        }
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_clone3 as u32, 0), RET_ENOSYS);
        assert_eq!(run(&program, 0x4000_0003, 1, 0), RET_KILL_PROCESS);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1, 0), RET_EPERM);
    }

    #[test]
    fn clone_and_unshare_may_not_make_namespaces() {
        let program = filter();
        let thread =
            (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_clone as u32, thread), RET_ALLOW);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_clone as u32, libc::SIGCHLD as u64), RET_ALLOW);
        let user_ns = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_clone as u32, user_ns), RET_EPERM);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_unshare as u32, libc::CLONE_NEWNET as u64), RET_EPERM);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_unshare as u32, 0x80), RET_EPERM);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, libc::SYS_unshare as u32, libc::CLONE_FILES as u64), RET_ALLOW);
    }
}
