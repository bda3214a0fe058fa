//! An error becomes a kind to count: the S3 error code when the endpoint sent one, the HTTP
//! status when it sent none, or the transport failure's class. Never a panic.

use aws_sdk_s3::config::http::HttpResponse as Response;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// How many characters of an error message are kept as the example of its kind.
const ERROR_MESSAGE_CHARS_MAX: usize = 400;

/// One failed operation: the kind it is counted under and a message to show once.
#[derive(Debug, Clone)]
pub struct OpError {
    pub kind: String,
    pub message: String,
}

impl OpError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if let Some((cut, _)) = message.char_indices().nth(ERROR_MESSAGE_CHARS_MAX) {
            message.truncate(cut);
        }
        Self { kind: kind.into(), message }
    }

    /// Classifies an SDK error: `NoSuchKey`, `SlowDown`, `HTTP 503`, `transport:io`,
    /// `transport:timeout`, `timeout`, `response`, `construction`.
    pub fn from_sdk<E>(operation: &str, error: &SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let kind = match error {
            SdkError::ServiceError(service) => match service.err().code() {
                Some(code) => code.to_string(),
                None => format!("HTTP {}", service.raw().status().as_u16()),
            },
            SdkError::DispatchFailure(failure) => {
                if failure.is_timeout() {
                    "transport:timeout".into()
                } else if failure.is_io() {
                    "transport:io".into()
                } else if failure.is_user() {
                    "transport:user".into()
                } else {
                    "transport:other".into()
                }
            }
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::ResponseError(response) => {
                format!("response:HTTP {}", response.raw().status().as_u16())
            }
            SdkError::ConstructionFailure(_) => "construction".into(),
            _ => "other".into(),
        };
        Self::new(kind, format!("{operation}: {}", DisplayErrorContext(error)))
    }
}
