//! Checks a sandbox request before anything is created, so impossible limits, bad paths or a
//! malformed command are a 400 naming the problem — never a half-created sandbox.

use runtools_protocol::ErrorCode;
use runtools_protocol::envd::ExecSpec;
use runtools_protocol::sandbox::{CreateSandboxRequest, ExecRequest, Isolation, SandboxLimits};
use runtools_sandbox::ResolvedLimits;

use super::SandboxDefaults;
use crate::error::ApiError;

/// A create request with defaults applied.
#[derive(Debug)]
pub(super) struct ValidCreate {
    pub template: String,
    pub limits: ResolvedLimits,
    /// The limits as shown in the API (all fields set).
    pub limits_view: SandboxLimits,
    pub timeout_secs: u64,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

pub(super) fn create_request(
    request: &CreateSandboxRequest,
    defaults: &SandboxDefaults,
    isolation: Isolation,
) -> Result<ValidCreate, ApiError> {
    if let Some(wanted) = request.isolation
        && wanted != isolation
    {
        return Err(invalid(format!(
            "this server runs {isolation:?} sandboxes; `{wanted:?}` isolation is not available here"
        )));
    }
    let template = request.template.clone().unwrap_or_else(|| "base".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu = request.limits.cpu.unwrap_or(defaults.cpu.min(cores));
    if !(cpu.is_finite() && (0.01..=cores).contains(&cpu)) {
        return Err(invalid(format!("`limits.cpu` must be between 0.01 and {cores} (this host's cores), got {cpu}")));
    }
    let memory_mb = request.limits.memory_mb.unwrap_or(defaults.memory_mb);
    if !(16..=1024 * 1024).contains(&memory_mb) {
        return Err(invalid(format!("`limits.memory_mb` must be at least 16, got {memory_mb}")));
    }
    let pids = request.limits.pids.unwrap_or(defaults.pids);
    if !(8..=65536).contains(&pids) {
        return Err(invalid(format!("`limits.pids` must be between 8 and 65536, got {pids}")));
    }
    let disk_mb = request.limits.disk_mb.unwrap_or(defaults.disk_mb);
    if !(16..=1024 * 1024).contains(&disk_mb) {
        return Err(invalid(format!("`limits.disk_mb` must be at least 16, got {disk_mb}")));
    }
    let timeout_secs = request.timeout_secs.unwrap_or(defaults.timeout_secs);
    if timeout_secs == 0 || timeout_secs > defaults.max_timeout_secs {
        return Err(invalid(format!("`timeout_secs` must be between 1 and {}", defaults.max_timeout_secs)));
    }
    for name in request.env.keys() {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(invalid(format!("`env` has an invalid variable name `{name}`")));
        }
    }
    let mut paths = std::collections::HashSet::new();
    for volume in &request.volumes {
        let valid_name = !volume.volume.is_empty()
            && volume.volume.len() <= 64
            && volume.volume.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(invalid(format!("volume name `{}` must be 1–64 letters, digits, `-` or `_`", volume.volume)));
        }
        if !volume.path.starts_with('/') || volume.path == "/" || volume.path.split('/').any(|part| part == "..") {
            return Err(invalid(format!(
                "volume path `{}` must be an absolute path below `/` without `..`",
                volume.path
            )));
        }
        if !paths.insert(volume.path.trim_end_matches('/')) {
            return Err(invalid(format!("two volumes are mounted at `{}`", volume.path)));
        }
    }
    Ok(ValidCreate {
        template,
        limits: ResolvedLimits { cpu, memory_bytes: memory_mb * 1024 * 1024, pids, disk_bytes: disk_mb * 1024 * 1024 },
        limits_view: SandboxLimits {
            cpu: Some(cpu),
            memory_mb: Some(memory_mb),
            pids: Some(pids),
            disk_mb: Some(disk_mb),
        },
        timeout_secs,
    })
}

/// Turns the API's exec request into envd's.
pub(super) fn exec_request(request: &ExecRequest) -> Result<ExecSpec, ApiError> {
    match (&request.cmd, &request.argv) {
        (Some(_), Some(_)) | (None, None) => return Err(invalid("give exactly one of `cmd` and `argv`")),
        (None, Some(argv)) if argv.is_empty() => return Err(invalid("`argv` must name a program")),
        _ => {}
    }
    let timeout_secs = request.timeout_secs.unwrap_or(60);
    if timeout_secs == 0 || timeout_secs > 24 * 3600 {
        return Err(invalid("`timeout_secs` must be between 1 and 86400"));
    }
    Ok(ExecSpec {
        argv: request.argv.clone(),
        cmd: request.cmd.clone(),
        env: request.env.clone(),
        cwd: request.cwd.clone(),
        user: request.user.clone(),
        pty: None,
        timeout_ms: Some(timeout_secs * 1000),
        background: false,
        tag: None,
    })
}

/// A fresh per-sandbox token for its port URLs (192 random bits, URL-safe).
pub(super) fn access_token() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtools_protocol::sandbox::VolumeMount;

    fn check(request: CreateSandboxRequest) -> Result<ValidCreate, ApiError> {
        create_request(&request, &SandboxDefaults::default(), Isolation::Namespace)
    }

    #[test]
    fn defaults_fill_everything() {
        let valid = check(CreateSandboxRequest::default()).unwrap();
        assert_eq!(valid.template, "base");
        assert_eq!(valid.limits.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(valid.timeout_secs, 300);
    }

    #[test]
    fn impossible_limits_name_the_field() {
        let cases = [
            (SandboxLimits { cpu: Some(0.0), ..Default::default() }, "limits.cpu"),
            (SandboxLimits { cpu: Some(f64::NAN), ..Default::default() }, "limits.cpu"),
            (SandboxLimits { cpu: Some(1000.0), ..Default::default() }, "limits.cpu"),
            (SandboxLimits { memory_mb: Some(1), ..Default::default() }, "limits.memory_mb"),
            (SandboxLimits { pids: Some(1), ..Default::default() }, "limits.pids"),
            (SandboxLimits { disk_mb: Some(0), ..Default::default() }, "limits.disk_mb"),
        ];
        for (limits, field) in cases {
            let error = check(CreateSandboxRequest { limits, ..Default::default() }).unwrap_err();
            assert!(error.message().contains(field), "{}", error.message());
        }
    }

    #[test]
    fn volume_paths_must_stay_absolute_and_distinct() {
        for path in ["relative", "/", "/a/../etc"] {
            let volumes = vec![VolumeMount { volume: "v".into(), path: path.into(), read_only: false }];
            assert!(check(CreateSandboxRequest { volumes, ..Default::default() }).is_err(), "{path}");
        }
        let twice = vec![
            VolumeMount { volume: "a".into(), path: "/data".into(), read_only: false },
            VolumeMount { volume: "b".into(), path: "/data/".into(), read_only: false },
        ];
        assert!(check(CreateSandboxRequest { volumes: twice, ..Default::default() }).is_err());
    }

    #[test]
    fn exec_needs_exactly_one_of_cmd_and_argv() {
        assert!(exec_request(&ExecRequest::default()).is_err());
        let both = ExecRequest { cmd: Some("ls".into()), argv: Some(vec!["ls".into()]), ..Default::default() };
        assert!(exec_request(&both).is_err());
        let spec = exec_request(&ExecRequest { cmd: Some("echo hi".into()), ..Default::default() }).unwrap();
        assert_eq!(spec.timeout_ms, Some(60_000));
    }
}
