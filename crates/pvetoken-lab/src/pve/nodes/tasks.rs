//! `/nodes/{node}/tasks`: every task finishes at once with a well-formed UPID; its owner reads it without
//! privileges (pve-manager `PVE/API2/Tasks.pm`).

use serde_json::{Value, json};

use crate::clock::now;
use crate::context::{Caller, Lab, Perm};
use crate::http::ApiError;
use crate::state::{State, Task};

/// Creates a finished task and returns its UPID.
pub(crate) fn task(state: &mut State, kind: &str, id: &str, user: &str, exitstatus: &str) -> String {
    let guests = &mut state.guests;
    guests.next_pid += 1;
    let pid = guests.next_pid;
    let start = now();
    let pstart = 1_000_000 + pid * 7;
    let upid = format!("UPID:{}:{pid:08X}:{pstart:08X}:{start:08X}:{kind}:{id}:{user}:", guests.node);
    guests.tasks.insert(
        upid.clone(),
        Task {
            upid: upid.clone(),
            node: guests.node.clone(),
            pid,
            pstart,
            starttime: start,
            endtime: start,
            kind: kind.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
            exitstatus: exitstatus.to_owned(),
        },
    );
    if guests.tasks.len() > 10_000
        && let Some(oldest) = guests.tasks.iter().min_by_key(|(_, t)| (t.starttime, t.pid)).map(|(k, _)| k.clone())
    {
        guests.tasks.remove(&oldest);
    }
    upid
}

pub(crate) fn task_json(t: &Task) -> Value {
    json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
        "endtime": t.endtime, "type": t.kind, "id": t.id, "user": t.user, "status": t.exitstatus,
    })
}

pub(crate) fn task_owner(user: &str) -> &str {
    user.rsplit_once('!').map_or(user, |(u, _)| u)
}

pub(crate) fn tasks(lab: &Lab, caller: &Caller) -> Result<Value, ApiError> {
    let state = lab.read();
    let all = Perm::new(lab, &state, caller).has(&format!("/nodes/{}", state.guests.node), &["Sys.Audit"], false);
    Ok(Value::Array(
        state
            .guests
            .tasks
            .values()
            .filter(|t| all || t.user == caller.authid || task_owner(&t.user) == caller.authid)
            .map(task_json)
            .collect(),
    ))
}

pub(crate) fn find_task<'s>(lab: &Lab, state: &'s State, caller: &Caller, upid: &str) -> Result<&'s Task, ApiError> {
    if !upid.starts_with("UPID:") || upid.split(':').count() < 9 {
        return Err(ApiError::param("upid", format!("unable to parse worker upid '{upid}'")));
    }
    let task = state.guests.tasks.get(upid);
    let user = upid.split(':').nth(7).unwrap_or_default();
    let owner = caller.authid == user || caller.authid == task_owner(user);
    if !owner {
        Perm::new(lab, state, caller).check(&format!("/nodes/{}", state.guests.node), &["Sys.Audit"], false)?;
    }
    task.ok_or_else(|| ApiError::internal(format!("no such task '{upid}'")))
}

pub(crate) fn task_status(lab: &Lab, caller: &Caller, upid: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let t = find_task(lab, &state, caller, upid)?;
    Ok(json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime, "type": t.kind,
        "id": t.id, "user": t.user, "status": "stopped", "exitstatus": t.exitstatus,
    }))
}

pub(crate) fn task_log(lab: &Lab, caller: &Caller, upid: &str) -> Result<Value, ApiError> {
    let state = lab.read();
    let t = find_task(lab, &state, caller, upid)?;
    let last = if t.exitstatus == "OK" { "TASK OK".to_owned() } else { format!("TASK ERROR: {}", t.exitstatus) };
    Ok(json!([{"n": 1, "t": format!("{} {} (pvetoken lab simulator)", t.kind, t.id)}, {"n": 2, "t": last}]))
}
