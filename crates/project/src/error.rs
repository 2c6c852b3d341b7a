//! Problems found while reading a project, each at a `path:line:col`, and the list of all of
//! them that [`crate::load_project`] returns so users can fix everything in one pass.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a project file: the path (relative to the project directory when the file is
/// inside it), a 1-based line and a 1-based column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    /// The first character of `path`.
    pub fn start_of(path: &Path) -> Self {
        Self { path: path.to_path_buf(), line: 1, col: 1 }
    }

    /// The position of byte `offset` in `source`, the text of `path`.
    pub fn at(path: &Path, source: &str, offset: u32) -> Self {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let col = before.get(line_start..).map_or(0, |text| text.chars().count()) + 1;
        Self { path: path.to_path_buf(), line, col }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
    }
}

/// One thing wrong with the project, where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct Problem {
    pub loc: Loc,
    pub message: String,
}

impl Problem {
    /// A problem at `loc`; line breaks in `message` become `; ` so each problem stays on one line.
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.contains('\n') {
            message.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join("; ")
        } else {
            message
        };
        Self { loc, message }
    }
}

/// Every problem found in a project, displayed one per line as `path:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProjectErrors {
    pub problems: Vec<Problem>,
}

impl ProjectErrors {
    /// Wraps `problems`, sorted by file and position so the output is stable.
    pub fn new(mut problems: Vec<Problem>) -> Self {
        problems.sort();
        problems.dedup();
        Self { problems }
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn len(&self) -> usize {
        self.problems.len()
    }
}

impl fmt::Display for ProjectErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let source = "ab\nçd = x";
        let path = Path::new("a.ts");
        assert_eq!(Loc::at(path, source, 0).to_string(), "a.ts:1:1");
        assert_eq!(Loc::at(path, source, 3).to_string(), "a.ts:2:1");
        // `ç` is two bytes but one column.
        assert_eq!(Loc::at(path, source, 8).to_string(), "a.ts:2:5");
        assert_eq!(Loc::at(path, source, 999).to_string(), "a.ts:2:7");
    }

    #[test]
    fn errors_render_one_per_line_sorted() {
        let errors = ProjectErrors::new(vec![
            Problem::new(Loc { path: "b.ts".into(), line: 1, col: 2 }, "second"),
            Problem::new(Loc { path: "a.ts".into(), line: 3, col: 4 }, "first"),
        ]);
        assert_eq!(errors.to_string(), "a.ts:3:4: first\nb.ts:1:2: second");
        assert_eq!(errors.len(), 2);
        let multiline = Problem::new(Loc::start_of("c.toml".as_ref()), "invalid string\nexpected `\"`\n");
        assert_eq!(multiline.to_string(), "c.toml:1:1: invalid string; expected `\"`");
    }
}
