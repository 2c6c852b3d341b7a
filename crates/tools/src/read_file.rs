//! The `read_file` tool: a text file's lines, numbered like `cat -n`, from an offset and up to a
//! limit. The file is streamed from envd and the read stops once the window is filled, so huge
//! files cost only what is shown. Binary files (NUL bytes, or mostly invalid UTF-8, in the first
//! 8 KiB) are refused with their size and likely type; directories with a hint to use `glob`.

use runtools_agent::ToolOutput;
use runtools_protocol::agent::ToolSpec;
use runtools_protocol::envd::EnvdErrorCode;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::{ToolContext, describe_error, is_envd_error};
use crate::output::{cut_line, numbered_line, thousands};

pub(crate) const NAME: &str = "read_file";

const DEFAULT_LIMIT: u64 = 2_000;
/// Characters of one line shown; the rest is cut with a marker.
pub(crate) const MAX_LINE_CHARS: usize = 2_000;
/// Bytes of one line kept while streaming (enough for `MAX_LINE_CHARS` of any UTF-8).
const MAX_LINE_BYTES: usize = MAX_LINE_CHARS * 4;
/// How much of the start of a file is inspected to tell text from binary.
pub(crate) const SNIFF_BYTES: usize = 8 * 1024;
/// Share of invalid UTF-8 bytes (in the sniffed start) a text file may have, shown as `�`.
const INVALID_UTF8_TOLERANCE: f64 = 0.02;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadFileInput {
    /// The file to read: absolute, or relative to the working directory.
    #[serde(alias = "file_path")]
    path: String,
    /// The line to start at (1-based; default 1).
    #[serde(default)]
    offset: Option<u64>,
    /// How many lines to return (default 2000).
    #[serde(default)]
    limit: Option<u64>,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: format!(
            "Reads a text file in the sandbox and returns its lines numbered like `cat -n` (the line number, a \
            tab, then the line). Returns up to {DEFAULT_LIMIT} lines from the start by default; for long files \
            pass `offset` (the 1-based line to start at) and `limit` (how many lines) to read a part, and the \
            output says how to continue when the file has more. Lines longer than {MAX_LINE_CHARS} characters \
            are cut. Paths are absolute or relative to the working directory. Binary files are refused (inspect \
            them with bash), and so are directories (list them with glob). Read a file before editing it with \
            edit_file; the line-number prefixes are not part of the file's text."
        ),
        input_schema: crate::schema::input_schema::<ReadFileInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: ReadFileInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    let path = match context.resolve(&input.path).await {
        Ok(path) => path,
        Err(message) => return ToolOutput::error(message),
    };
    let offset = input.offset.unwrap_or(1).max(1);
    let limit = input.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return ToolOutput::error("`limit` must be at least 1");
    }
    let window = Window { offset, limit, max_bytes: context.output_limits().read_file_bytes };
    read(context, &path, window).await
}

async fn read(context: &ToolContext, path: &str, window: Window) -> ToolOutput {
    let (entry, mut reader) = match context.envd().read(path, None, None).await {
        Ok(opened) => opened,
        Err(error) if is_envd_error(&error, EnvdErrorCode::IsADirectory) => {
            return ToolOutput::error(format!(
                "{path} is a directory, not a file. To see what it contains, use glob (e.g. pattern `*` or `**/*` \
                 with path `{path}`) or `ls` in bash."
            ));
        }
        Err(error) if is_envd_error(&error, EnvdErrorCode::NotFound) => {
            return ToolOutput::error(format!("file not found: {path}"));
        }
        Err(error) => return ToolOutput::error(describe_error(&error, path)),
    };
    let mut sniffed: Vec<u8> = Vec::new();
    let mut lines = Lines::new(window);
    let mut lossy = false;
    let mut sniff_done = false;
    loop {
        let chunk = match reader.chunk().await {
            Ok(chunk) => chunk,
            Err(error) => return ToolOutput::error(format!("reading {path} failed: {}", describe_error(&error, path))),
        };
        let at_end = chunk.is_none();
        if !sniff_done {
            if let Some(chunk) = &chunk {
                sniffed.extend_from_slice(chunk);
            }
            if sniffed.len() < SNIFF_BYTES && !at_end {
                continue;
            }
            sniff_done = true;
            match classify(&sniffed, at_end) {
                Content::Binary(kind) => {
                    return ToolOutput::error(format!(
                        "{path} is a binary file ({kind}, {} bytes), not text; read_file only shows text. Inspect it \
                         with bash instead (e.g. `file {path}`, `xxd {path} | head`).",
                        thousands(entry.size)
                    ));
                }
                Content::Text { lossy: some_invalid } => lossy = some_invalid,
            }
            if !lines.push(&sniffed) {
                break;
            }
        } else if let Some(chunk) = &chunk
            && !lines.push(chunk)
        {
            break;
        }
        if at_end {
            lines.finish();
            break;
        }
    }
    // Dropping the reader here cancels the rest of a long file.
    drop(reader);
    if lines.total_bytes == 0 && lines.more == More::No {
        return ToolOutput::ok(format!("{path} is empty (0 bytes)."));
    }
    if lines.shown == 0 && lines.more == More::No {
        return ToolOutput::error(format!(
            "{path} has {} lines; offset {} is past its end.",
            thousands(lines.line_no - 1),
            thousands(window.offset)
        ));
    }
    let mut content = lines.out;
    let last = window.offset + lines.shown - 1;
    match lines.more {
        More::No => {}
        More::Limit => content.push_str(&format!(
            "\n[Showing lines {}-{} of {path} ({} bytes in all); the file continues. Read on with offset={}.]\n",
            thousands(window.offset),
            thousands(last),
            thousands(entry.size),
            last + 1
        )),
        More::Size => content.push_str(&format!(
            "\n[Output cut after line {} to stay under {} bytes; the file continues ({} bytes in all). Read on with \
             offset={}, or ask for fewer lines.]\n",
            thousands(last),
            thousands(window.max_bytes as u64),
            thousands(entry.size),
            last + 1
        )),
    }
    if lossy {
        content.push_str("\n[Some bytes are not valid UTF-8 and are shown as �.]\n");
    }
    ToolOutput::ok(content)
}

/// Which lines to show.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// The first line (1-based).
    pub(crate) offset: u64,
    pub(crate) limit: u64,
    /// Most bytes of numbered output.
    pub(crate) max_bytes: usize,
}

/// Whether the file goes on after what was shown, and why the showing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum More {
    No,
    /// `limit` lines were shown.
    Limit,
    /// The output reached `max_bytes`.
    Size,
}

/// Turns a stream of bytes into the numbered lines of a window, keeping at most one line's worth of
/// bytes beyond the output.
#[derive(Debug)]
pub(crate) struct Lines {
    window: Window,
    /// The number of the line being assembled (1-based).
    line_no: u64,
    /// The kept start of the current line.
    current: Vec<u8>,
    current_len: u64,
    pub(crate) out: String,
    pub(crate) shown: u64,
    pub(crate) total_bytes: u64,
    /// Set once the window is full (`Limit`/`Size`) and more bytes followed.
    pub(crate) more: More,
    /// The window is full; the next byte means there is more.
    full: Option<More>,
}

impl Lines {
    pub(crate) fn new(window: Window) -> Self {
        Self {
            window,
            line_no: 1,
            current: Vec::new(),
            current_len: 0,
            out: String::new(),
            shown: 0,
            total_bytes: 0,
            more: More::No,
            full: None,
        }
    }

    /// Feeds the next bytes; false once nothing more is needed.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> bool {
        self.total_bytes += data.len() as u64;
        while !data.is_empty() {
            if let Some(reason) = self.full {
                self.more = reason;
                return false;
            }
            match data.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    self.take(&data[..end]);
                    self.end_line();
                    data = &data[end + 1..];
                }
                None => {
                    self.take(data);
                    data = &[];
                }
            }
        }
        true
    }

    /// The end of the file: a last line without a line break still counts.
    pub(crate) fn finish(&mut self) {
        if self.full.is_none() && self.current_len > 0 {
            self.end_line();
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.line_no >= self.window.offset {
            let room = MAX_LINE_BYTES.saturating_sub(self.current.len());
            self.current.extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        self.current_len += bytes.len() as u64;
    }

    fn end_line(&mut self) {
        if self.line_no >= self.window.offset {
            let line = render_line(&self.current, self.current_len);
            let numbered = numbered_line(self.line_no, &line);
            if self.shown > 0 && self.out.len() + numbered.len() + 1 > self.window.max_bytes {
                // This line is not shown: it is where reading goes on.
                self.full = Some(More::Size);
                self.more = More::Size;
                return;
            }
            self.out.push_str(&numbered);
            self.out.push('\n');
            self.shown += 1;
            if self.shown == self.window.limit {
                self.full = Some(More::Limit);
            }
        }
        self.line_no += 1;
        self.current.clear();
        self.current_len = 0;
    }
}

/// One line for display: without its `\r`, cut at `MAX_LINE_CHARS` with a marker.
fn render_line(kept: &[u8], total_len: u64) -> String {
    let truncated = (kept.len() as u64) < total_len;
    let kept = kept.strip_suffix(b"\r").unwrap_or(kept);
    if truncated {
        // Only the start of a very long line was kept.
        let text = String::from_utf8_lossy(kept);
        let end = text.char_indices().nth(MAX_LINE_CHARS).map_or(text.len(), |(end, _)| end);
        return format!("{}… [line cut: {} bytes in all]", &text[..end], thousands(total_len));
    }
    cut_line(&String::from_utf8_lossy(kept), MAX_LINE_CHARS)
}

/// What the start of a file looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Text; `lossy` when a few bytes are not valid UTF-8.
    Text { lossy: bool },
    /// Not text; the likely kind of file.
    Binary(&'static str),
}

/// Tells text from binary by the first bytes of a file (`complete`: that is the whole file).
pub(crate) fn classify(start: &[u8], complete: bool) -> Content {
    let start = &start[..start.len().min(SNIFF_BYTES)];
    let kind = magic_kind(start);
    if start.contains(&0) {
        return Content::Binary(kind.unwrap_or("binary data"));
    }
    let mut invalid = 0usize;
    let mut rest = start;
    loop {
        match std::str::from_utf8(rest) {
            Ok(_) => break,
            Err(error) => match error.error_len() {
                Some(len) => {
                    invalid += len;
                    rest = &rest[error.valid_up_to() + len..];
                }
                // A sequence cut short: by the sniffing window (fine), or at the real end of the file.
                None => {
                    if complete {
                        invalid += rest.len() - error.valid_up_to();
                    }
                    break;
                }
            },
        }
    }
    if let Some(kind) = kind
        && invalid > 0
    {
        return Content::Binary(kind);
    }
    if invalid as f64 > start.len() as f64 * INVALID_UTF8_TOLERANCE {
        return Content::Binary(kind.unwrap_or("not UTF-8 text: binary data or another encoding"));
    }
    Content::Text { lossy: invalid > 0 }
}

/// A file type recognised by its first bytes.
fn magic_kind(start: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "PNG image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"GIF87a", "GIF image"),
        (b"GIF89a", "GIF image"),
        (b"%PDF-", "PDF document"),
        (b"PK\x03\x04", "ZIP archive (or a format built on it: jar, docx, xlsx…)"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"BZh", "bzip2-compressed data"),
        (b"\xfd7zXZ\x00", "xz-compressed data"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
        (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
        (b"\x7fELF", "ELF executable or library"),
        (b"\x00asm", "WebAssembly module"),
        (b"SQLite format 3\x00", "SQLite database"),
        (b"\xca\xfe\xba\xbe", "Java class file or Mach-O binary"),
        (b"\xcf\xfa\xed\xfe", "Mach-O binary"),
        (b"MZ", "Windows executable"),
        (b"OggS", "Ogg audio/video"),
        (b"fLaC", "FLAC audio"),
        (b"ID3", "MP3 audio"),
        (b"\x00\x00\x01\x00", "icon image"),
        (b"wOFF", "WOFF font"),
        (b"wOF2", "WOFF2 font"),
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(magic, _)| start.starts_with(magic)) {
        return Some(kind);
    }
    if start.len() >= 12 && start.starts_with(b"RIFF") {
        return Some(match &start[8..12] {
            b"WEBP" => "WebP image",
            b"WAVE" => "WAV audio",
            b"AVI " => "AVI video",
            _ => "RIFF media file",
        });
    }
    if start.len() >= 12 && &start[4..8] == b"ftyp" {
        return Some("MP4/QuickTime media file");
    }
    if start.len() >= 262 && &start[257..262] == b"ustar" {
        return Some("tar archive");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(offset: u64, limit: u64) -> Window {
        Window { offset, limit, max_bytes: 1_000_000 }
    }

    /// Feeds `text` in `chunk`-byte pieces, as envd would.
    fn lines_of(text: &[u8], window: Window, chunk: usize) -> Lines {
        let mut lines = Lines::new(window);
        let mut finished = false;
        for piece in text.chunks(chunk) {
            if !lines.push(piece) {
                finished = true;
                break;
            }
        }
        if !finished {
            lines.finish();
        }
        lines
    }

    #[test]
    fn lines_are_numbered_from_the_offset() {
        let text = b"one\ntwo\r\nthree\nfour";
        for chunk in [1, 3, 100] {
            let lines = lines_of(text, window(1, 100), chunk);
            assert_eq!(lines.out, "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n", "chunk {chunk}");
            assert_eq!(lines.more, More::No);
            let lines = lines_of(text, window(2, 2), chunk);
            assert_eq!(lines.out, "     2\ttwo\n     3\tthree\n", "chunk {chunk}");
            assert_eq!(lines.more, More::Limit);
        }
    }

    #[test]
    fn a_full_window_at_the_end_of_the_file_has_nothing_more() {
        let lines = lines_of(b"a\nb\n", window(1, 2), 1);
        assert_eq!(lines.shown, 2);
        assert_eq!(lines.more, More::No);
        let lines = lines_of(b"a\nb\nc", window(1, 2), 100);
        assert_eq!(lines.more, More::Limit);
    }

    #[test]
    fn blank_lines_count() {
        let lines = lines_of(b"\n\nx\n", window(1, 10), 2);
        assert_eq!(lines.out, "     1\t\n     2\t\n     3\tx\n");
    }

    #[test]
    fn long_lines_are_cut_with_their_length() {
        let mut text = "a".repeat(MAX_LINE_BYTES * 3).into_bytes();
        text.extend_from_slice(b"\nshort\n");
        let lines = lines_of(&text, window(1, 10), 4096);
        let first = lines.out.lines().next().unwrap();
        assert!(first.ends_with(&format!("… [line cut: {} bytes in all]", thousands((MAX_LINE_BYTES * 3) as u64))));
        assert_eq!(first.split('…').next().unwrap().matches('a').count(), MAX_LINE_CHARS);
        assert_eq!(lines.out.lines().nth(1), Some("     2\tshort"));
        let medium = format!("{}\n", "b".repeat(MAX_LINE_CHARS + 10));
        let lines = lines_of(medium.as_bytes(), window(1, 10), 100);
        assert!(lines.out.ends_with("… [line cut: 2,010 characters in all]\n"), "{}", lines.out);
    }

    #[test]
    fn output_stops_at_the_byte_budget() {
        let text: String = (0..100).map(|n| format!("line {n:03}\n")).collect();
        let lines = lines_of(text.as_bytes(), Window { offset: 1, limit: 100, max_bytes: 100 }, 7);
        // "     1\tline 000\n" is 16 bytes: six fit in 100.
        assert_eq!(lines.shown, 6);
        assert_eq!(lines.more, More::Size);
    }

    #[test]
    fn binary_content_is_recognised() {
        assert_eq!(classify(b"hello\nworld\n", true), Content::Text { lossy: false });
        assert_eq!(classify("héllo".as_bytes(), true), Content::Text { lossy: false });
        assert_eq!(classify(b"\x89PNG\r\n\x1a\n\x00\x00", true), Content::Binary("PNG image"));
        assert_eq!(classify(b"\x7fELF\x02\x01\x01\x00", true), Content::Binary("ELF executable or library"));
        assert_eq!(classify(b"abc\x00def", true), Content::Binary("binary data"));
        // One stray Latin-1 byte in a long text is tolerated and shown lossily.
        let mut latin1 = "x".repeat(200).into_bytes();
        latin1.push(0xe9);
        assert_eq!(classify(&latin1, true), Content::Text { lossy: true });
        let garbage: Vec<u8> = (0..200).map(|n| 0x80 + (n % 64) as u8).collect();
        assert!(matches!(classify(&garbage, true), Content::Binary(kind) if kind.starts_with("not UTF-8")));
        // A multi-byte character cut by the sniffing window is not an error.
        let mut cut = "x".repeat(10).into_bytes();
        cut.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(classify(&cut, false), Content::Text { lossy: false });
    }
}
