//! `/version` and `/access/*`.
use serde_json::Value;
use crate::http::{ApiError, Params};
use crate::server::{Caller, Lab};

pub(crate) fn world(_lab: &Lab, _name: &str, _params: &Params, _headers: &hyper::HeaderMap) -> Result<Value, ApiError> {
    Err(ApiError::internal("todo"))
}

pub(crate) fn handle(_lab: &Lab, _name: &str, _caller: &Caller, _params: &Params, _caps: &[String]) -> Option<Result<Value, ApiError>> {
    None
}
