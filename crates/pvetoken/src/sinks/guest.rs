//! A token file delivered into a guest through the QEMU guest agent (`deliver`, `create --deliver-to`): delivered
//! again, the same way, when the token changes.

use std::path::Path;

use pvetoken_client::pve::PveClient;

use super::SinkRecord;
use crate::connection::Target;
use crate::deliver::{DeliveryRequest, deliver};
use crate::exit::CliError;
use crate::printer::Printer;

/// A guest the token file was delivered into. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestSink {
    /// The node the VM runs on.
    pub node: String,
    /// The VM.
    pub vmid: u64,
    /// The file in the guest.
    pub guest_path: String,
    /// `user:group` of the file.
    pub owner: String,
    /// The guest command run after each delivery (`deliver -- COMMAND`), e.g. the guest's
    /// `pvetoken register semaphore ... --if-token-file --remove-token-file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<String>,
}

/// Remembers the guest as a sink of `token_file`, so that `rotate` delivers the rotated token there too.
pub fn remember(token_file: &Path, request: &DeliveryRequest) -> Result<(), CliError> {
    let sink = GuestSink {
        node: request.node.clone(),
        vmid: request.vmid,
        guest_path: request.guest_path.clone(),
        owner: request.owner.clone(),
        then: request.then.clone(),
    };
    super::remember(token_file, SinkRecord::Guest(sink)).map_err(|error| {
        CliError::usage(format!("delivered, but the guest could not be remembered for rotate: {error:#}"))
    })
}

/// Before a secret changes: the guest agent answers now, or the guest would keep a dead secret.
pub(crate) async fn ready(sink: &GuestSink, admin: &PveClient) -> anyhow::Result<()> {
    let path = format!("/nodes/{}/qemu/{}/agent/ping", sink.node, sink.vmid);
    admin.post::<serde_json::Value>(&path, &Vec::new()).await?;
    Ok(())
}

/// Delivers the token file's token into the guest again (and runs the guest command after it).
pub(crate) async fn refresh(
    sink: &GuestSink,
    token_file: &Path,
    admin: &PveClient,
    target: &Target,
    printer: &Printer,
) -> anyhow::Result<()> {
    let token = pvetoken_lifecycle::token_store::read(token_file)?;
    let mut request = DeliveryRequest::new(sink.node.clone(), sink.vmid, "pvetoken rotate");
    request.guest_path = sink.guest_path.clone();
    request.owner = sink.owner.clone();
    request.then = sink.then.clone();
    deliver(admin, target, &request, &token, printer).await?;
    printer.info(&format!("{} holds the new token", SinkRecord::Guest(sink.clone()).describe()));
    Ok(())
}
