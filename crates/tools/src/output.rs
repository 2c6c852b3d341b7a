//! Keeping tool output to what a model should read: [`OutputLimits`] (the sizes), [`HeadTail`]
//! (keeps the first and last bytes of a stream of any length and counts what it cut between them),
//! and small formatting helpers shared by the tools (`cat -n` numbering, thousands separators).

use std::collections::VecDeque;

/// How much output the tools hand to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes kept from the start of a long output (for `bash`, per stream: stdout and stderr).
    pub head_bytes: usize,
    /// Bytes kept from the end of a long output.
    pub tail_bytes: usize,
    /// Most bytes of numbered file content one `read_file` call returns.
    pub read_file_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self { head_bytes: 15_000, tail_bytes: 15_000, read_file_bytes: 100_000 }
    }
}

/// The first `head` and last `tail` bytes of a stream, with a count of what was dropped between
/// them. Memory stays bounded however much is pushed.
#[derive(Debug, Clone)]
pub(crate) struct HeadTail {
    head_limit: usize,
    tail_limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    cut_bytes: u64,
    cut_newlines: u64,
}

impl HeadTail {
    pub(crate) fn new(limits: &OutputLimits) -> Self {
        Self::with_limits(limits.head_bytes, limits.tail_bytes)
    }

    pub(crate) fn with_limits(head_limit: usize, tail_limit: usize) -> Self {
        Self { head_limit, tail_limit, head: Vec::new(), tail: VecDeque::new(), cut_bytes: 0, cut_newlines: 0 }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        let room = self.head_limit.saturating_sub(self.head.len());
        let into_head = room.min(data.len());
        self.head.extend_from_slice(&data[..into_head]);
        data = &data[into_head..];
        if data.is_empty() {
            return;
        }
        if data.len() >= self.tail_limit {
            // Everything in the tail, and the start of `data`, falls into the cut.
            let (dropped, kept) = data.split_at(data.len() - self.tail_limit);
            let evicted: Vec<u8> = self.tail.drain(..).collect();
            self.cut(&evicted);
            self.cut(dropped);
            self.tail.extend(kept);
        } else {
            self.tail.extend(data);
            let excess = self.tail.len().saturating_sub(self.tail_limit);
            if excess > 0 {
                let evicted: Vec<u8> = self.tail.drain(..excess).collect();
                self.cut(&evicted);
            }
        }
    }

    fn cut(&mut self, bytes: &[u8]) {
        self.cut_bytes += bytes.len() as u64;
        self.cut_newlines += bytes.iter().filter(|&&byte| byte == b'\n').count() as u64;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    /// The kept text (lossy UTF-8), with a `[… N lines / M bytes cut …]` note where the middle
    /// was dropped. The cut is widened to whole lines when a line break is near.
    pub(crate) fn render(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if self.cut_bytes == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let mut head: &[u8] = &self.head;
        let mut tail: &[u8] = &tail;
        let mut cut_bytes = self.cut_bytes;
        let mut cut_lines = self.cut_newlines;
        // End the head after its last line break, when that loses at most half of it.
        if let Some(last) = head.iter().rposition(|&byte| byte == b'\n')
            && last + 1 >= head.len() / 2
        {
            cut_bytes += (head.len() - last - 1) as u64;
            head = &head[..=last];
        }
        // Start the tail after its first line break, likewise.
        if let Some(first) = tail.iter().position(|&byte| byte == b'\n')
            && first < tail.len() / 2
        {
            cut_bytes += (first + 1) as u64;
            cut_lines += 1;
            tail = &tail[first + 1..];
        }
        let head = utf8_prefix(head);
        let tail = utf8_suffix(tail);
        let mut text = String::from_utf8_lossy(head).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[… {} lines / {} bytes cut …]\n", thousands(cut_lines), thousands(cut_bytes)));
        text.push_str(&String::from_utf8_lossy(tail));
        text
    }
}

/// `bytes` without a UTF-8 sequence cut short at its end.
fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(error) if error.error_len().is_none() => &bytes[..error.valid_up_to()],
        _ => bytes,
    }
}

/// `bytes` without the continuation bytes of a UTF-8 sequence cut short at its start.
fn utf8_suffix(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take(3).take_while(|&&byte| byte & 0b1100_0000 == 0b1000_0000).count();
    &bytes[skip..]
}

/// `text` cut to its first and last bytes per `limits`, with a note saying what was cut.
pub(crate) fn cut_middle(text: &str, limits: &OutputLimits) -> String {
    let mut kept = HeadTail::new(limits);
    kept.push(text.as_bytes());
    kept.render()
}

/// `12345` → `12,345`.
pub(crate) fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One line as `cat -n` prints it: the number right-aligned in six columns, a tab, the text.
pub(crate) fn numbered_line(number: u64, text: &str) -> String {
    format!("{number:>6}\t{text}")
}

/// `text`'s lines `first..=last` (1-based), numbered; each line cut at `max_chars`.
pub(crate) fn numbered_lines(text: &str, first: usize, last: usize, max_chars: usize) -> String {
    let mut out = String::new();
    for (index, line) in
        text.split('\n').enumerate().skip(first.saturating_sub(1)).take((last + 1).saturating_sub(first.max(1)))
    {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(&numbered_line(index as u64 + 1, &cut_line(line, max_chars)));
        out.push('\n');
    }
    out
}

/// `line` cut to `max_chars` characters, with a marker saying how long it was.
pub(crate) fn cut_line(line: &str, max_chars: usize) -> String {
    match line.char_indices().nth(max_chars) {
        None => line.to_owned(),
        Some((end, _)) => {
            format!("{}… [line cut: {} characters in all]", &line[..end], thousands(line.chars().count() as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut kept = HeadTail::with_limits(10, 10);
        kept.push(b"hello\n");
        kept.push(b"world\n");
        assert_eq!(kept.render(), "hello\nworld\n");
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_counts_the_cut() {
        let text: String = (1..=1000).map(|n| format!("line {n}\n")).collect();
        let mut kept = HeadTail::with_limits(100, 100);
        // Pushed in odd-sized pieces, as a stream arrives.
        for piece in text.as_bytes().chunks(7) {
            kept.push(piece);
        }
        let rendered = kept.render();
        assert!(rendered.starts_with("line 1\nline 2\n"), "{rendered}");
        assert!(rendered.ends_with("line 999\nline 1000\n"), "{rendered}");
        let note = rendered.lines().find(|line| line.starts_with("[…")).unwrap();
        let kept_lines = rendered.lines().filter(|line| line.starts_with("line ")).count();
        let kept_bytes: usize =
            rendered.lines().filter(|line| line.starts_with("line ")).map(|line| line.len() + 1).sum();
        // Whole lines were cut, and the counts add up to the input.
        assert_eq!(
            note,
            format!("[… {} lines / {} bytes cut …]", 1000 - kept_lines, thousands((text.len() - kept_bytes) as u64))
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(1000);
        let rendered = cut_middle(&text, &OutputLimits { head_bytes: 101, tail_bytes: 101, read_file_bytes: 0 });
        assert!(!rendered.contains('\u{fffd}'), "{rendered}");
        assert!(rendered.contains("bytes cut"));
    }

    #[test]
    fn one_huge_push_keeps_the_last_bytes() {
        let mut kept = HeadTail::with_limits(3, 3);
        kept.push(b"abcdefghij");
        kept.push(b"kl");
        assert_eq!(kept.render(), "abc\n[… 0 lines / 6 bytes cut …]\njkl");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn lines_are_numbered_like_cat_n() {
        assert_eq!(numbered_line(7, "x"), "     7\tx");
        assert_eq!(numbered_lines("a\nb\r\nc\nd", 2, 3, 100), "     2\tb\n     3\tc\n");
        assert_eq!(cut_line("abcdef", 3), "abc… [line cut: 6 characters in all]");
        assert_eq!(cut_line("abc", 3), "abc");
    }
}
