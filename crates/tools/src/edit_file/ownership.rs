//! Keeping file ownership right when commands run as a user. envd writes as root and replaces a
//! file by renaming a new one into place, so without this an edited file would end up owned by
//! root (its mode is kept, its owner is not) and the user's own commands could no longer change
//! it. When the context has a user, edit_file therefore records the owner of an existing file
//! before writing and restores it after, and gives new files (and the directories created for
//! them) to the user. Both are best effort through `stat`/`chown` in the sandbox: a failure is
//! logged, not fatal. (The proper home for this is envd's write; see the crate's report.)

use runtools_protocol::envd::{EnvdErrorCode, ExecSpec};

use crate::context::{ToolContext, is_envd_error};

/// Who should own the file once it is written.
#[derive(Debug)]
pub(super) enum Owner {
    /// Commands run as envd's user: nothing to do.
    Unchanged,
    /// Restore `uid:gid` on the replaced file.
    Restore { owner: String },
    /// A new file: give it, and the directories created for it, to the user.
    Give { user: String, created_dirs: Vec<String> },
}

/// What to restore or give after writing `path` (`exists`: it is being replaced).
pub(super) async fn plan(context: &ToolContext, path: &str, exists: bool) -> Owner {
    let Some(user) = context.user() else { return Owner::Unchanged };
    if exists {
        let spec = ExecSpec {
            argv: Some(vec!["stat".into(), "-c".into(), "%u:%g".into(), "--".into(), path.into()]),
            timeout_ms: Some(10_000),
            ..ExecSpec::default()
        };
        return match context.envd().run(spec, None).await {
            Ok(output) if output.exit.success() => {
                let owner = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if owner.is_empty() || owner == "0:0" { Owner::Unchanged } else { Owner::Restore { owner } }
            }
            Ok(output) => {
                tracing::warn!(path, stderr = %String::from_utf8_lossy(&output.stderr), "cannot read a file's owner");
                Owner::Unchanged
            }
            Err(error) => {
                tracing::warn!(path, %error, "cannot read a file's owner");
                Owner::Unchanged
            }
        };
    }
    Owner::Give { user: user.to_owned(), created_dirs: missing_parents(context, path).await }
}

/// The ancestors of `path` that do not exist yet, outermost first.
async fn missing_parents(context: &ToolContext, path: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if parent.is_empty() {
            break;
        }
        match context.envd().stat(parent).await {
            Err(error) if is_envd_error(&error, EnvdErrorCode::NotFound) => missing.push(parent.to_owned()),
            _ => break,
        }
        dir = parent;
    }
    missing.reverse();
    missing
}

/// Applies the plan after the write.
pub(super) async fn apply(context: &ToolContext, path: &str, owner: Owner) {
    let (owner, mut paths) = match owner {
        Owner::Unchanged => return,
        Owner::Restore { owner } => (owner, Vec::new()),
        // `user:` is the user and their login group.
        Owner::Give { user, created_dirs } => (format!("{user}:"), created_dirs),
    };
    paths.push(path.to_owned());
    let mut argv = vec!["chown".to_owned(), owner, "--".to_owned()];
    argv.extend(paths);
    let spec = ExecSpec { argv: Some(argv), timeout_ms: Some(10_000), ..ExecSpec::default() };
    match context.envd().run(spec, None).await {
        Ok(output) if output.exit.success() => {}
        Ok(output) => {
            tracing::warn!(path, stderr = %String::from_utf8_lossy(&output.stderr), "cannot restore a file's owner");
        }
        Err(error) => tracing::warn!(path, %error, "cannot restore a file's owner"),
    }
}
