//! Guests.
use serde_json::Value;
use crate::http::{ApiError, Params};
use crate::server::{Caller, Lab};

pub(crate) fn handle(_lab: &Lab, _name: &str, _caller: &Caller, _params: Params, _caps: &[String]) -> Option<Result<Value, ApiError>> {
    None
}
