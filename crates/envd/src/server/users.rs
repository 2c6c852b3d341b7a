//! User lookup without NSS (envd is static): parses the sandbox's own `/etc/passwd` and
//! `/etc/group` to turn a user name or uid into uid, gid, supplementary groups and home.

use std::io::Read;

use runtools_protocol::envd::{EnvdError, EnvdErrorCode};
use rustix::fs::{Mode, OFlags};

use super::connection::envd_error;
use super::paths::{SandboxPath, SandboxRoot};
use super::spawn::Identity;

/// A user to run a process as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) home: String,
    pub(crate) identity: Identity,
}

#[derive(Debug, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry> + '_ {
    text.lines().filter(|line| !line.trim_start().starts_with('#')).filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _password, uid, gid, _gecos, home, ..] = fields.as_slice() else { return None };
        Some(PasswdEntry {
            name: (*name).to_owned(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            home: (*home).to_owned(),
        })
    })
}

/// Groups in `/etc/group` that list `user` as a member.
fn member_groups(text: &str, user: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [_name, _password, gid, members, ..] = fields.as_slice() else { return None };
            members.split(',').any(|member| member.trim() == user).then(|| gid.parse().ok()).flatten()
        })
        .collect()
}

/// `/etc/<file>` inside the sandbox (empty when missing or unreadable).
fn read_etc(root: &SandboxRoot, file: &str) -> String {
    let mut text = String::new();
    let opened =
        SandboxPath::parse(&format!("/etc/{file}")).and_then(|path| root.open_at(&path, OFlags::RDONLY, Mode::empty()));
    if let Ok(fd) = opened {
        let _ = std::fs::File::from(fd).take(16 * 1024 * 1024).read_to_string(&mut text);
    }
    text
}

/// Resolves `spec` (a name or a numeric uid) in `<root>/etc/passwd`. A numeric uid that has no
/// entry runs with gid = uid and home `/`.
pub(crate) fn resolve(root: &SandboxRoot, spec: &str) -> Result<User, EnvdError> {
    let passwd = read_etc(root, "passwd");
    let numeric: Option<u32> = spec.parse().ok();
    let entry = parse_passwd(&passwd).find(|entry| match numeric {
        Some(uid) => entry.uid == uid,
        None => entry.name == spec,
    });
    let entry = match (entry, numeric) {
        (Some(entry), _) => entry,
        (None, Some(uid)) => PasswdEntry { name: spec.to_owned(), uid, gid: uid, home: "/".to_owned() },
        (None, None) => {
            return Err(envd_error(EnvdErrorCode::UnknownUser, format!("no user `{spec}` in /etc/passwd")));
        }
    };
    let mut groups = vec![entry.gid];
    for gid in member_groups(&read_etc(root, "group"), &entry.name) {
        if !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    Ok(User { identity: Identity { uid: entry.uid, gid: entry.gid, groups }, name: entry.name, home: entry.home })
}

/// envd's own user (name and home), for the environment of processes that do not switch user.
pub(crate) fn current(root: &SandboxRoot) -> (String, String) {
    let uid = rustix::process::getuid().as_raw();
    match parse_passwd(&read_etc(root, "passwd")).find(|entry| entry.uid == uid) {
        Some(entry) => (entry.name, entry.home),
        None if uid == 0 => ("root".to_owned(), "/root".to_owned()),
        None => (uid.to_string(), "/".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn resolves_names_uids_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "# comment\nroot:x:0:0:root:/root:/bin/sh\nbroken line\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "wheel:x:10:alice,bob\nstaff:x:50:bob\nalice:x:1000:\n").unwrap();
        let root = SandboxRoot::open(dir.path()).unwrap();

        let alice = resolve(&root, "alice").unwrap();
        assert_eq!(alice.identity, Identity { uid: 1000, gid: 1000, groups: vec![1000, 10] });
        assert_eq!(alice.home, "/home/alice");
        assert_eq!(resolve(&root, "1000").unwrap().name, "alice");
        let unknown_uid = resolve(&root, "4242").unwrap();
        assert_eq!(unknown_uid.identity, Identity { uid: 4242, gid: 4242, groups: vec![4242] });
        let error = resolve(&root, "mallory").unwrap_err();
        assert_eq!(error.code, EnvdErrorCode::UnknownUser);
    }
}
