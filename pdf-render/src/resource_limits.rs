//! The process's own memory and CPU limits. Lowering a limit needs no privilege.

use rustix::process::{Resource, Rlimit, setrlimit};

/// Caps the address space at `memory_bytes` and CPU time at `cpu_seconds` (0 leaves a
/// limit as it is). An allocation past the first fails (and aborts this process); the
/// second ends it with SIGXCPU, then SIGKILL a second later.
pub fn apply(memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<()> {
    if memory_bytes > 0 {
        setrlimit(Resource::As, Rlimit { current: Some(memory_bytes), maximum: Some(memory_bytes) })?;
    }
    if cpu_seconds > 0 {
        setrlimit(Resource::Cpu, Rlimit { current: Some(cpu_seconds), maximum: Some(cpu_seconds + 1) })?;
    }
    Ok(())
}
