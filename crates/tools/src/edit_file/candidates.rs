//! When `old_string` is nowhere in the file: the regions that look most like it, so the model can
//! see what the file really says there. Regions are windows of as many lines as `old_string` has,
//! scored by the mean similarity of their lines (character-bigram Dice coefficient of the trimmed
//! lines), which costs one pass over each pair of lines and no allocation per pair.

use super::matcher::{FileLines, OldLines};

/// How many regions are offered.
const MAX_CANDIDATES: usize = 3;
/// Regions less similar than this are not worth showing.
const MIN_SIMILARITY: f64 = 0.5;
/// Most line comparisons spent scoring (a huge file with a long `old_string` scores fewer of
/// `old_string`'s lines).
const COMPARISON_BUDGET: usize = 2_000_000;

/// A region of the file that resembles `old_string`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// 1-based, inclusive.
    pub(crate) first_line: usize,
    pub(crate) last_line: usize,
    /// 0 to 1.
    pub(crate) similarity: f64,
}

/// The regions of `content` most similar to `old`, best first.
pub(crate) fn closest_regions(content: &str, old: &str) -> Vec<Candidate> {
    let file = FileLines::new(content);
    let wanted = OldLines::new(old);
    if file.lines.is_empty() {
        return Vec::new();
    }
    let count = wanted.lines.len().min(file.lines.len()).max(1);
    let scored = count.min((COMPARISON_BUDGET / file.lines.len()).max(1));
    let have: Vec<Bigrams> = file.lines.iter().map(|line| Bigrams::of(line)).collect();
    let want: Vec<Bigrams> = wanted.lines[..scored].iter().map(|line| Bigrams::of(line)).collect();
    let mut windows: Vec<(usize, f64)> = (0..=file.lines.len() - count)
        .map(|start| {
            let total: f64 = want.iter().enumerate().map(|(offset, want)| have[start + offset].dice(want)).sum();
            (start, total / scored as f64)
        })
        .filter(|(_, score)| *score >= MIN_SIMILARITY)
        .collect();
    windows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut picked: Vec<Candidate> = Vec::new();
    for (start, similarity) in windows {
        let (first_line, last_line) = (start + 1, start + count);
        let overlaps = picked.iter().any(|other| first_line <= other.last_line && other.first_line <= last_line);
        if !overlaps {
            picked.push(Candidate { first_line, last_line, similarity });
            if picked.len() == MAX_CANDIDATES {
                break;
            }
        }
    }
    picked
}

/// The sorted character bigrams of a trimmed line.
#[derive(Debug)]
struct Bigrams {
    /// For lines too short to have bigrams.
    text: String,
    pairs: Vec<u64>,
}

impl Bigrams {
    fn of(line: &str) -> Self {
        let text = line.trim();
        let chars: Vec<char> = text.chars().collect();
        let mut pairs: Vec<u64> =
            chars.windows(2).map(|pair| (u64::from(pair[0]) << 32) | u64::from(pair[1])).collect();
        pairs.sort_unstable();
        Self { text: text.to_owned(), pairs }
    }

    /// 2·|shared| / (|a| + |b|), with blank and one-character lines compared for equality.
    fn dice(&self, other: &Self) -> f64 {
        if self.pairs.is_empty() || other.pairs.is_empty() {
            return if self.text == other.text { 1.0 } else { 0.0 };
        }
        let (mut i, mut j, mut shared) = (0, 0, 0usize);
        while i < self.pairs.len() && j < other.pairs.len() {
            match self.pairs[i].cmp(&other.pairs[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    shared += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        2.0 * shared as f64 / (self.pairs.len() + other.pairs.len()) as f64
    }
}
