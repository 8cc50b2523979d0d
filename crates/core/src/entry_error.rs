//! A file-system entry a backup or restore could not handle; the
//! operation goes on and lists it in its report.

/// An entry that could not be backed up or restored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryError {
    /// Path of the entry.
    pub path: String,
    /// What went wrong.
    pub message: String,
}
