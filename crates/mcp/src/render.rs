//! Turns an MCP `tools/call` result into the text the model reads: text blocks as they are
//! (joined by newlines), images, audio and binary resources as a one-line description with
//! their MIME type and size, embedded text resources with a header line, and
//! `structuredContent` as JSON when there is no text.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

/// What the model sees when a tool returns nothing at all.
pub const EMPTY_RESULT: &str = "(no output)";

/// The model-facing text of `result`.
pub fn result_text(result: &CallToolResult) -> String {
    let mut parts = Vec::with_capacity(result.content.len() + 1);
    let mut has_text = false;
    for block in &result.content {
        match block {
            ContentBlock::Text(text) => {
                has_text = true;
                parts.push(text.text.clone());
            }
            ContentBlock::Image(image) => {
                parts.push(format!("[image: {}, {}]", image.mime_type, size(base64_len(&image.data))));
            }
            ContentBlock::Audio(audio) => {
                parts.push(format!("[audio: {}, {}]", audio.mime_type, size(base64_len(&audio.data))));
            }
            ContentBlock::Resource(embedded) => match &embedded.resource {
                ResourceContents::TextResourceContents { uri, mime_type, text, .. } => {
                    has_text = true;
                    let mime = mime_type.as_deref().unwrap_or("text");
                    parts.push(format!("[resource: {uri}, {mime}, {}]\n{text}", size(text.len() as u64)));
                }
                ResourceContents::BlobResourceContents { uri, mime_type, blob, .. } => {
                    let mime = mime_type.as_deref().unwrap_or("application/octet-stream");
                    parts.push(format!("[resource: {uri}, {mime}, {}]", size(base64_len(blob))));
                }
                // `ResourceContents` is non-exhaustive.
                other => parts.push(format!("[resource: {}]", serde_json::to_string(other).unwrap_or_default())),
            },
            ContentBlock::ResourceLink(link) => {
                let mut line = format!("[resource link: {}", link.uri);
                if link.name != link.uri {
                    line.push_str(&format!(" ({})", link.name));
                }
                if let Some(mime) = &link.mime_type {
                    line.push_str(&format!(", {mime}"));
                }
                if let Some(bytes) = link.size {
                    line.push_str(&format!(", {}", size(bytes)));
                }
                line.push(']');
                if let Some(description) = &link.description {
                    line.push_str(&format!(" {description}"));
                }
                parts.push(line);
            }
            // `ContentBlock` is non-exhaustive: show what a newer server sent rather than drop it.
            other => parts.push(serde_json::to_string(other).unwrap_or_else(|_| "[unsupported content]".into())),
        }
    }
    if !has_text && let Some(structured) = &result.structured_content {
        parts.push(structured.to_string());
    }
    if parts.is_empty() { EMPTY_RESULT.to_owned() } else { parts.join("\n") }
}

/// Decoded size of base64 `data`, without decoding it.
fn base64_len(data: &str) -> u64 {
    let significant = data.bytes().filter(|b| !b.is_ascii_whitespace()).count() as u64;
    let padding = data.trim_end().bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (significant * 3 / 4).saturating_sub(padding)
}

fn size(bytes: u64) -> String {
    if bytes == 1 { "1 byte".into() } else { format!("{bytes} bytes") }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{Resource, ResourceContents};
    use serde_json::json;

    use super::*;

    #[test]
    fn joins_text_blocks() {
        let result = CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("two")]);
        assert_eq!(result_text(&result), "one\ntwo");
    }

    #[test]
    fn describes_binary_content_with_mime_and_size() {
        // "hello" is aGVsbG8= (5 bytes), "hi!" is aGkh (3 bytes).
        let result = CallToolResult::success(vec![
            ContentBlock::image("aGVsbG8=", "image/png"),
            ContentBlock::audio("aGkh", "audio/wav"),
            ContentBlock::resource(
                ResourceContents::blob("aGVsbG8=", "file:///a.bin").with_mime_type("application/zip"),
            ),
        ]);
        assert_eq!(
            result_text(&result),
            "[image: image/png, 5 bytes]\n[audio: audio/wav, 3 bytes]\n[resource: file:///a.bin, application/zip, 5 bytes]"
        );
    }

    #[test]
    fn embedded_text_resources_keep_their_text() {
        let result = CallToolResult::success(vec![ContentBlock::embedded_text("file:///notes.md", "# Notes")]);
        assert_eq!(result_text(&result), "[resource: file:///notes.md, text/plain, 7 bytes]\n# Notes");
    }

    #[test]
    fn resource_links_are_described() {
        let link = Resource::new("https://example.com/r", "report").with_mime_type("application/pdf").with_size(2048);
        let result = CallToolResult::success(vec![ContentBlock::resource_link(link)]);
        assert_eq!(
            result_text(&result),
            "[resource link: https://example.com/r (report), application/pdf, 2048 bytes]"
        );
    }

    #[test]
    fn structured_content_is_shown_only_without_text() {
        let mut result = CallToolResult::success(vec![]);
        result.structured_content = Some(json!({"temperature": 22.5}));
        assert_eq!(result_text(&result), r#"{"temperature":22.5}"#);
        let mut with_text = CallToolResult::success(vec![ContentBlock::text("22.5 degrees")]);
        with_text.structured_content = Some(json!({"temperature": 22.5}));
        assert_eq!(result_text(&with_text), "22.5 degrees");
    }

    #[test]
    fn empty_result_says_so() {
        assert_eq!(result_text(&CallToolResult::success(vec![])), EMPTY_RESULT);
    }

    #[test]
    fn base64_sizes() {
        assert_eq!(base64_len(""), 0);
        assert_eq!(base64_len("aGk="), 2);
        assert_eq!(base64_len("aGVs\nbG8="), 5);
        assert_eq!(size(1), "1 byte");
    }
}
