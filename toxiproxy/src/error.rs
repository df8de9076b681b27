//! The one error type of the API, mapped to HTTP once (`status`) like Toxiproxy's
//! `{"error": "...", "status": N}` bodies.

/// An API error; `status()` is its HTTP status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a missing field or an invalid value (400).
    #[error("{0}")]
    BadRequest(String),
    /// No proxy with that name (404).
    #[error("proxy not found")]
    ProxyNotFound,
    /// No toxic with that name on the proxy (404).
    #[error("toxic not found")]
    ToxicNotFound,
    /// No route for this path and method (404).
    #[error("not found")]
    NoRoute,
    /// A proxy with that name exists (409).
    #[error("proxy already exists")]
    ProxyExists,
    /// A toxic with that name exists on the proxy (409).
    #[error("toxic already exists")]
    ToxicExists,
    /// The proxy could not listen on its address (500, like Toxiproxy).
    #[error("listen {addr}: {source}")]
    Listen {
        /// The listen address.
        addr: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// The proxy task did not answer a toxic update (500).
    #[error("proxy task unavailable: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status code Toxiproxy uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::ProxyNotFound | ApiError::ToxicNotFound | ApiError::NoRoute => 404,
            ApiError::ProxyExists | ApiError::ToxicExists => 409,
            ApiError::Listen { .. } | ApiError::Internal(_) => 500,
        }
    }

    /// The JSON body `{"error": message, "status": code}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "status": self.status() })
    }
}
