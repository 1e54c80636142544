//! [`ProxyError`]: why a guest request got no rows, refused by the capability or failed.
//!
//! It lives apart from the proxy so that the SQL policy (and its fuzz target) builds
//! without the database drivers: nothing here depends on sqlx.

use super::policy::Denial;

/// Whether a request was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorKind {
    /// Refused by the capability.
    Denied,
    /// Allowed, but could not be answered.
    Failed,
}

/// Why a request got no rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    /// The capability refused it.
    #[error("{0}")]
    Denied(#[from] Denial),
    /// It could not be checked or run.
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
}

impl ProxyError {
    /// A request that could not be checked or run.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), hint: None }
    }

    /// Refused or failed.
    pub fn kind(&self) -> ProxyErrorKind {
        match self {
            Self::Denied(_) => ProxyErrorKind::Denied,
            Self::Failed { .. } => ProxyErrorKind::Failed,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Denied(denial) => denial.hint(),
            Self::Failed { hint, .. } => hint.clone(),
        }
    }
}
