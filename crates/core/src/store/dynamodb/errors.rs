//! SDK failures as `LockError`s: which are worth another try (the manager retries; the SDK's
//! own retries are off), and messages that carry AWS codes and request ids, never secrets.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::DynamoStore;
use crate::error::LockError;

impl DynamoStore {
  /// Turns an SDK failure into a `LockError` without leaking anything secret: AWS error
  /// messages carry codes and request ids, never credentials.
  pub(super) fn sdk_error<E>(&self, op: &str, err: SdkError<E, HttpResponse>) -> LockError
  where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
  {
    let code = err.code().unwrap_or("").to_owned();
    let detail = err.message().unwrap_or("").to_owned();
    match &err {
      SdkError::ServiceError(_) => {
        if code == "ResourceNotFoundException" {
          return LockError::TableNotFound(self.opts.table.clone());
        }
        let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let message = if code.is_empty() {
          format!("DynamoDB {op} failed: HTTP {status}")
        } else {
          format!("DynamoDB {op} failed: {code}: {detail}")
        };
        // Server-side trouble (5xx), throttling (429 and its named codes) and credentials
        // that a provider may refresh are worth another try; other client errors are not.
        let retry = status >= 500
          || status == 429
          || (code.is_empty() && !(400..500).contains(&status))
          || matches!(
            code.as_str(),
            "ProvisionedThroughputExceededException"
              | "ThrottlingException"
              | "RequestLimitExceeded"
              | "TransactionConflictException"
              | "ReplicatedWriteConflictException"
              | "LimitExceededException"
              | "ExpiredTokenException"
          );
        if retry {
          LockError::backend(message, err)
        } else {
          LockError::Rejected {
            message,
            source: Some(Box::new(err)),
          }
        }
      }
      SdkError::TimeoutError(_) => LockError::backend(
        format!(
          "DynamoDB {op} timed out after {} ms",
          self.opts.request_timeout.as_millis()
        ),
        err,
      ),
      SdkError::DispatchFailure(failure) => {
        let context = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        let io = failure
          .as_connector_error()
          .is_some_and(|c| c.is_io() || c.is_timeout());
        if !io && context.contains("credentials") {
          // Nothing in the AWS chain gave credentials: retrying will not find any.
          return LockError::Rejected {
            message: format!(
              "DynamoDB {op} failed: no AWS credentials (give options.dynamodb.credentials, or set them in the environment, shared files or profile)"
            ),
            source: Some(context.into()),
          };
        }
        LockError::backend(
          format!("DynamoDB {op} failed: endpoint unreachable"),
          context,
        )
      }
      SdkError::ConstructionFailure(_) => LockError::Rejected {
        message: format!(
          "DynamoDB {op} could not be sent (missing region or credentials?): {}",
          aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        ),
        source: Some(Box::new(err)),
      },
      _ => LockError::backend(format!("DynamoDB {op} failed"), err),
    }
  }
}
