//! Versions of the gateway under test: `current`, a release (`3.9.1`), `git:<ref>`, `image:<ref>`.
//!
//! A `git:` version is resolved to a commit of the gateway's source repository and its tree is
//! checked out with git2 into perflab's cache (`$XDG_CACHE_HOME/perflab/worktrees/<commit>`). The
//! checkout writes only into that directory and never updates the repository's index, HEAD,
//! stash or working tree, and it is registered nowhere in the repository — so the user's work is
//! untouched even if perflab is killed mid-way. Checkouts are reused across runs (they are
//! keyed by commit) and removed by `perflab teardown`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::install::cache_dir;
use crate::util::fs::private_dir_all;
use crate::{Error, Result};

/// What kind of version a label names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VersionKind {
    /// Whatever the driver finds installed.
    Current,
    /// A release number, checked against the installed program or used to pick an image.
    Release {
        /// The number, e.g. `3.9.1`.
        number: String,
    },
    /// A commit of the gateway's source repository.
    Git {
        /// The ref as written (`main`, `v1.2`, `HEAD~3`, a sha).
        reference: String,
        /// The commit it resolved to.
        commit: String,
        /// The repository.
        repo: PathBuf,
    },
    /// A container image reference.
    Image {
        /// The image.
        image: String,
    },
}

/// The syntax of a version label, before anything is resolved: what [`Version::parse`] and a
/// gateway adapter that reads labels itself (Kong's) both start from, so a label means the
/// same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label<'a> {
    /// `current`.
    Current,
    /// A release number (starts with a digit), e.g. `3.9.1`.
    Release(&'a str),
    /// `git:<ref>`: the ref.
    Git(&'a str),
    /// `image:<ref>`: the image reference.
    Image(&'a str),
}

impl<'a> Label<'a> {
    /// Classifies a label (surrounding spaces ignored); an empty, unknown or incomplete label is
    /// a usage error that lists the forms.
    pub fn classify(label: &'a str) -> Result<Label<'a>> {
        let label = label.trim();
        if label.is_empty() {
            Err(Error::Usage("empty version label".into()))
        } else if label == "current" {
            Ok(Label::Current)
        } else if let Some(r) = label.strip_prefix("git:") {
            Ok(Label::Git(r))
        } else if let Some(i) = label.strip_prefix("image:") {
            if i.is_empty() {
                return Err(Error::Usage(
                    "image: needs an image reference, e.g. image:kong:3.9.1".into(),
                ));
            }
            Ok(Label::Image(i))
        } else if label.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            Ok(Label::Release(label))
        } else {
            Err(Error::Usage(format!(
                "version \"{label}\" is not understood: use current, a release number (3.9.1), git:<ref> or image:<ref>"
            )))
        }
    }
}

/// A version as given by the user, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The label as written.
    pub label: String,
    /// What it resolved to.
    #[serde(flatten)]
    pub kind: VersionKind,
}

/// Where checked-out commits live.
pub fn worktrees_dir() -> PathBuf {
    cache_dir().join("worktrees")
}

impl Version {
    /// Parses and resolves a label. `repo` is the gateway's source repository for `git:` labels.
    pub fn parse(label: &str, repo: &Path) -> Result<Version> {
        let label = label.trim();
        let kind = match Label::classify(label)? {
            Label::Current => VersionKind::Current,
            Label::Git(r) => {
                let (commit, repo) = resolve_git(r, repo)?;
                VersionKind::Git {
                    reference: r.to_string(),
                    commit,
                    repo,
                }
            }
            Label::Image(i) => VersionKind::Image {
                image: i.to_string(),
            },
            Label::Release(n) => VersionKind::Release {
                number: n.to_string(),
            },
        };
        Ok(Version {
            label: label.to_string(),
            kind,
        })
    }

    /// The `current` version.
    pub fn current() -> Version {
        Version {
            label: "current".into(),
            kind: VersionKind::Current,
        }
    }

    /// Makes the version usable: for `git:` versions, the checked-out tree (created on first
    /// use). Other versions need no directory. What a gateway kind needs in that tree is its
    /// adapter's business (the gateway role's `prepare_version` asks it).
    pub fn prepare(&self) -> Result<Option<PathBuf>> {
        match &self.kind {
            VersionKind::Git { commit, repo, .. } => Ok(Some(checkout(repo, commit)?)),
            _ => Ok(None),
        }
    }

    /// A description for results: the commit for git versions, else what the gateway reported.
    pub fn detail(&self, gateway_reported: &str) -> String {
        match &self.kind {
            VersionKind::Git { commit, .. } if gateway_reported.is_empty() => {
                format!("commit {commit}")
            }
            VersionKind::Git { commit, .. } => format!("commit {commit} ({gateway_reported})"),
            _ => gateway_reported.to_string(),
        }
    }
}

fn open_repo(repo: &Path) -> Result<git2::Repository> {
    git2::Repository::discover(repo).map_err(|e| {
        Error::Usage(format!(
            "{} is not a git repository ({}); pass the gateway's source repo with --repo",
            repo.display(),
            e.message()
        ))
    })
}

/// Resolves a ref (branch, tag, sha, `HEAD~N`) to a commit id.
pub fn resolve_git(reference: &str, repo: &Path) -> Result<(String, PathBuf)> {
    let r = open_repo(repo)?;
    let obj = r.revparse_single(reference).map_err(|e| {
        Error::Usage(format!(
            "unknown git ref \"{reference}\" in {}: {}",
            repo.display(),
            e.message()
        ))
    })?;
    let commit = obj.peel_to_commit().map_err(|e| {
        Error::Usage(format!(
            "git ref \"{reference}\" is not a commit: {}",
            e.message()
        ))
    })?;
    let root = r.workdir().unwrap_or_else(|| r.path()).to_path_buf();
    Ok((commit.id().to_string(), root))
}

/// Checks out `commit`'s tree into the cache (reused when present); returns the directory.
pub fn checkout(repo: &Path, commit: &str) -> Result<PathBuf> {
    let dest = worktrees_dir().join(commit);
    if dest.join(".perflab-complete").is_file() {
        return Ok(dest);
    }
    let parent = worktrees_dir();
    private_dir_all(&parent, Some(&cache_dir())).map_err(|e| Error::io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".checkout-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let r = open_repo(repo)?;
    let oid = git2::Oid::from_str(commit).map_err(|e| Error::Lab(e.message().to_string()))?;
    let tree = r
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| Error::Lab(format!("commit {commit}: {}", e.message())))?;
    let mut opts = git2::build::CheckoutBuilder::new();
    opts.target_dir(tmp.path())
        .update_index(false)
        .force()
        .recreate_missing(true);
    r.checkout_tree(tree.as_object(), Some(&mut opts))
        .map_err(|e| Error::Lab(format!("checking out {commit}: {}", e.message())))?;
    std::fs::write(tmp.path().join(".perflab-complete"), commit)
        .map_err(|e| Error::io(tmp.path(), e))?;
    let tmp_path = tmp.keep();
    match std::fs::rename(&tmp_path, &dest) {
        Ok(()) => Ok(dest),
        Err(_) if dest.join(".perflab-complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp_path);
            Ok(dest)
        }
        Err(e) => Err(Error::io(&dest, e)),
    }
}

/// Removes every cached checkout. Returns how many were removed.
pub fn clean_worktrees() -> Result<usize> {
    let dir = worktrees_dir();
    let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&dir, e)),
        _ => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels() {
        assert_eq!(
            Version::parse("current", Path::new(".")).unwrap().kind,
            VersionKind::Current
        );
        assert_eq!(
            Version::parse("3.9.1", Path::new(".")).unwrap().kind,
            VersionKind::Release {
                number: "3.9.1".into()
            }
        );
        assert!(matches!(
            Version::parse("image:kong:3.9.1", Path::new("."))
                .unwrap()
                .kind,
            VersionKind::Image { .. }
        ));
        assert!(
            Version::parse("banana", Path::new("."))
                .unwrap_err()
                .to_string()
                .contains("not understood")
        );
    }
}
