//! Stub.
/// A line.
pub struct Line {
    pub text: String,
    pub exact: bool,
}
/// Editor.
#[derive(Default)]
pub struct LineEditor;
impl LineEditor {
    /// Feeds.
    pub fn feed(&mut self, _b: &[u8]) -> Vec<Line> {
        Vec::new()
    }
}
