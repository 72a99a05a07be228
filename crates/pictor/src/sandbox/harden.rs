//! What a sandbox child does to itself before it touches a file: no
//! inherited descriptors, an address-space limit, no core dumps, no new
//! privileges, new user and network namespaces where the kernel allows
//! them, and a seccomp filter denying the network, `exec` and the calls
//! that reach other processes or the kernel's configuration.

use std::fs::File;

/// The system calls the filter denies (with `EPERM`). A denylist: the
/// decoders' own needs (files, memory, threads for libheif) stay allowed.
#[cfg(target_os = "linux")]
const DENIED: &[libc::c_long] = &[
    // The network (no socket can be made, so none can be used).
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    // Running anything else.
    libc::SYS_execve,
    libc::SYS_execveat,
    // Other processes.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    // Namespaces, mounts and the kernel.
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
];

/// How a measure that could not be applied starts its line (the parent warns of it).
pub const NOT_APPLIED: &str = "not applied: ";

/// Applies every measure it can to this process, which must still be
/// single-threaded (a user namespace needs it), and returns what was
/// applied or why not, one line each.
pub fn apply(memory_mb: u64) -> Vec<String> {
    let mut applied = Vec::new();
    #[cfg(target_os = "linux")]
    linux::apply(memory_mb, &mut applied);
    #[cfg(not(target_os = "linux"))]
    applied.push(format!("{NOT_APPLIED}any limit (memory limit {memory_mb} MB): the sandbox's limits need Linux"));
    applied
}

/// The descriptor replies go to: the original stdout, while fd 1 itself
/// becomes a copy of stderr, so that a library printing to stdout cannot
/// break the protocol.
///
/// # Errors
/// A descriptor cannot be duplicated.
pub fn replies() -> std::io::Result<File> {
    use std::os::fd::AsFd as _;

    let replies = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    // SAFETY: dup2 of two descriptors this process owns (stderr onto stdout).
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(replies)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
        TargetArch,
    };

    use super::{DENIED, NOT_APPLIED};

    pub fn apply(memory_mb: u64, applied: &mut Vec<String>) {
        close_inherited();
        // prctl and syscall are variadic: their arguments are passed as the kernel's longs.
        let (kill, one, zero): (libc::c_ulong, libc::c_ulong, libc::c_ulong) =
            (libc::SIGKILL.unsigned_abs().into(), 1, 0);
        let bytes = memory_mb.saturating_mul(1 << 20);
        applied.push(match set_limit(libc::RLIMIT_AS, bytes) {
            Ok(()) => format!("address space limited to {memory_mb} MB"),
            Err(e) => format!("{NOT_APPLIED}memory limit: {e}"),
        });
        if set_limit(libc::RLIMIT_CORE, 0).is_err() {
            applied.push(format!("{NOT_APPLIED}no core dumps"));
        }
        // SAFETY: prctl with integer arguments only.
        let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) } == 0;
        applied.push(if no_new_privs {
            "no new privileges".to_owned()
        } else {
            format!("{NOT_APPLIED}no new privileges: {}", std::io::Error::last_os_error())
        });
        // SAFETY: unshare only changes this (single-threaded) process's namespaces.
        let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0;
        applied.push(if unshared {
            "new user and network namespaces (no network interface)".to_owned()
        } else {
            format!("{NOT_APPLIED}user and network namespaces: {}", std::io::Error::last_os_error())
        });
        // After the namespaces: a change of credentials clears it.
        // SAFETY: prctl with integer arguments only.
        let orphaned = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, kill, zero, zero, zero) } != 0;
        if orphaned {
            applied.push(format!("{NOT_APPLIED}parent-death signal: {}", std::io::Error::last_os_error()));
        }
        applied.push(match seccomp() {
            Ok(()) => format!("seccomp filter: {} system calls denied, network and exec among them", DENIED.len() + 1),
            Err(e) => format!("{NOT_APPLIED}seccomp filter: {e}"),
        });
    }

    /// Closes every descriptor but stdin, stdout and stderr: the parent's
    /// database connections and listeners are opened close-on-exec, and
    /// this makes sure of it.
    fn close_inherited() {
        let (first, last, flags): (libc::c_ulong, libc::c_ulong, libc::c_ulong) = (3, u32::MAX.into(), 0);
        // SAFETY: close_range on descriptors this process owns, none of
        // which Rust holds yet (this runs first thing in main).
        let closed = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) } == 0;
        if !closed {
            for fd in 3..1024 {
                // SAFETY: as above; closing a descriptor that is not open is harmless.
                unsafe {
                    libc::close(fd);
                }
            }
        }
    }

    /// The type glibc's and musl's `setrlimit` take a resource as.
    #[cfg(target_env = "gnu")]
    type Resource = libc::__rlimit_resource_t;
    #[cfg(not(target_env = "gnu"))]
    type Resource = libc::c_int;

    fn set_limit(resource: Resource, value: u64) -> std::io::Result<()> {
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit reads the struct passed by reference.
        if unsafe { libc::setrlimit(resource, &raw const limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The denylist, plus `tgkill` aimed at any process but this one.
    fn seccomp() -> Result<(), String> {
        fn text(e: impl std::fmt::Display) -> String {
            e.to_string()
        }
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&call| (call, Vec::new())).collect();
        let own = u64::from(std::process::id());
        let elsewhere = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, own)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(text)?;
        rules.insert(libc::SYS_tgkill, vec![elsewhere]);
        let arch: TargetArch = std::env::consts::ARCH.try_into().map_err(text)?;
        let denied = SeccompAction::Errno(u32::try_from(libc::EPERM).unwrap_or(1));
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, denied, arch).map_err(text)?;
        let program: BpfProgram = filter.try_into().map_err(text)?;
        seccompiler::apply_filter(&program).map_err(text)
    }
}
