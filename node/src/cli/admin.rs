//! `mortar admin`: inspect a running cluster.

use clap::{Args, Subcommand};
use mortar_proto::v1::admin_client::AdminClient;
use mortar_proto::v1::{
    DrainRequest, MemberStatus, MembersRequest, MembersResponse, RemoveRequest, StatusRequest, StatusResponse,
};

use super::{ConnectArgs, EXIT_OK, Failure, say, write_stdout};

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show every member of the cluster as seen from the node you ask.
    #[command(long_about = "Show every member of the cluster as seen from the node you ask: its \
        address, region, whether it answered, and its replication counters (instances committed, \
        on the fast and the slow path, executed, and still in flight).\n\n\
        A member that does not answer is shown as unreachable with the reason.")]
    Status(StatusArgs),
    /// List the node directory the control plane holds: state, epoch, voter or learner, ready.
    #[command(long_about = "List every node the control plane knows, removed and dead ones \
        included (their ids are never reused): its address, region, state (joining, active, \
        draining, removed, dead), its replica group's epoch, its part in the control plane (voter \
        or learner), and whether it holds its group's data.\n\n\
        The node you ask answers from its own copy of the control plane's state.")]
    Members(MembersArgs),
    /// Move actor ownership off a node before restarting it (membership does not change).
    #[command(long_about = "Move actor ownership off a node before restarting it: the node keeps \
        replicating and serving as a member, but owns no actor; the others take its actors over \
        (with fencing, as after a failure, but without waiting for failure detection). \
        Idempotent. Refused when no other member could own the actors.\n\n\
        Undo it with `mortar admin undrain <id>`.")]
    Drain(DrainArgs),
    /// Let a drained node own actors again.
    Undrain(DrainArgs),
    /// Reconfigure the replica group without a node (alive or dead).
    #[command(long_about = "Reconfigure the replica group without a node, alive or dead: the \
        node you ask (a member) seals the group's epoch and the control plane commits the next \
        one without that node. Every acknowledged write is kept. The removed node, if alive, \
        stops, and never starts again on its data directory; its id is never reused.\n\n\
        Refused, with the reason, when it would leave fewer than 3 members, no reachable \
        majority, or while another reconfiguration is in progress. Idempotent, and resumable: \
        run it again after any failure.")]
    Remove(DrainArgs),
    /// Print the node that owns an actor (its id on the first line), as the node you ask sees it.
    Locate(super::actors::LocateArgs),
    /// List the actors active on every node.
    Actors(super::actors::ActorsArgs),
    /// Destroy an actor: its state, key-value space, alarms and queues, in one write; calls then
    /// answer NotFound until a call with an input creates it again.
    Destroy(super::actors::LocateArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node's id (see `mortar admin members`).
    pub id: u32,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: AdminArgs) -> Result<u8, Failure> {
    match args.command {
        AdminCommand::Status(a) => {
            let mut client = AdminClient::new(a.connect.connect().await?);
            let request = a.connect.request(StatusRequest {});
            let status = a.connect.call("the node did not report", client.status(request)).await?;
            if a.json {
                say(&status_json(&status).to_string())?;
            } else {
                write_stdout(status_table(&status).as_bytes(), false)?;
            }
            Ok(EXIT_OK)
        }
        AdminCommand::Members(a) => {
            let mut client = AdminClient::new(a.connect.connect().await?);
            let request = a.connect.request(MembersRequest {});
            let members =
                a.connect.call("the node did not list the members", client.members(request)).await?;
            if a.json {
                say(&members_json(&members).to_string())?;
            } else {
                write_stdout(members_table(&members).as_bytes(), false)?;
            }
            Ok(EXIT_OK)
        }
        AdminCommand::Drain(a) => set_drained(a, true).await,
        AdminCommand::Undrain(a) => set_drained(a, false).await,
        AdminCommand::Remove(a) => remove(a).await,
        AdminCommand::Locate(a) => super::actors::locate(a).await,
        AdminCommand::Actors(a) => super::actors::actors(a).await,
        AdminCommand::Destroy(a) => super::actors::destroy(a).await,
    }
}

/// Longest wait for a switch of epochs to commit (the node gives up after a minute).
const SWITCH_TIMEOUT_MS: u64 = 70_000;

/// Removes a node from the replica group, printing each step.
async fn remove(mut a: DrainArgs) -> Result<u8, Failure> {
    a.connect.timeout_ms = a.connect.timeout_ms.max(SWITCH_TIMEOUT_MS);
    let mut client = AdminClient::new(a.connect.connect().await?);
    say(&format!("removing node {} through {}", a.id, a.connect.endpoint))?;
    let request = a.connect.request(RemoveRequest { id: a.id });
    let reply = a.connect.call("the node was not removed", client.remove(request)).await?;
    for step in &reply.progress {
        say(step)?;
    }
    say(&format!(
        "node {} is removed: the group runs epoch {} with members {:?}",
        a.id, reply.epoch, reply.members
    ))?;
    Ok(EXIT_OK)
}

/// Drains a node (or undrains it) and says what became of it.
async fn set_drained(a: DrainArgs, drain: bool) -> Result<u8, Failure> {
    let mut client = AdminClient::new(a.connect.connect().await?);
    let request = a.connect.request(DrainRequest { id: a.id });
    let reply = if drain {
        a.connect.call("the node was not drained", client.drain(request)).await?
    } else {
        a.connect.call("the node was not undrained", client.undrain(request)).await?
    };
    let id = a.id;
    let what = if drain {
        format!("it owns no actors; undo with `mortar admin undrain {id}`")
    } else {
        "it may own actors again".to_string()
    };
    say(&format!("node {id} is {}: {what}", reply.state))?;
    Ok(EXIT_OK)
}

/// The members as one JSON object (the cluster id as a hex string, as in `status_json`).
pub fn members_json(members: &MembersResponse) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (members.members.iter())
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "address": m.address,
                "region": m.region,
                "state": m.state,
                "epoch": m.epoch,
                "control": m.control,
                "ready": m.ready,
            })
        })
        .collect();
    serde_json::json!({
        "cluster_id": format!("{:016x}", members.cluster_id),
        "answered_by": members.answered_by,
        "control_leader": members.control_leader,
        "applied_index": members.applied_index,
        "members": rows,
    })
}

/// The members as a table, one node per row, after a header line.
pub fn members_table(members: &MembersResponse) -> String {
    const HEADER: [&str; 7] = ["ID", "ADDRESS", "REGION", "STATE", "EPOCH", "CONTROL", "READY"];
    let rows: Vec<Vec<String>> = (members.members.iter())
        .map(|m| {
            vec![
                m.id.to_string(),
                m.address.clone(),
                m.region.clone(),
                m.state.clone(),
                if m.epoch == 0 { "-".into() } else { m.epoch.to_string() },
                if m.control.is_empty() { "-".into() } else { m.control.clone() },
                if m.ready { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    let leader = match members.control_leader {
        0 => "no control-plane leader known".to_string(),
        id => format!("control-plane leader {id}"),
    };
    let mut out = format!(
        "cluster {:016x}, answered by node {} ({leader}, applied index {})\n",
        members.cluster_id, members.answered_by, members.applied_index
    );
    out.push_str(&columns(std::iter::once(&header).chain(&rows)));
    out
}

/// Rows as left-aligned columns two spaces apart, each line trimmed.
fn columns<'a>(rows: impl Iterator<Item = &'a Vec<String>> + Clone) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows.clone() {
        widths.resize(widths.len().max(row.len()), 0);
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The status as one JSON object with every field. The cluster id is the hex string the table
/// shows: as a JSON number it would pass 2^53, and tools such as jq round it.
pub fn status_json(status: &StatusResponse) -> serde_json::Value {
    let members: Vec<serde_json::Value> = status
        .members
        .iter()
        .map(|m| {
            let epoxy = m.epoxy.as_ref().map(|e| {
                serde_json::json!({
                    "instances_proposed": e.instances_proposed,
                    "instances_committed": e.instances_committed,
                    "instances_executed": e.instances_executed,
                    "fast_path_commits": e.fast_path_commits,
                    "slow_path_commits": e.slow_path_commits,
                    "instances_in_flight": e.instances_in_flight,
                })
            });
            serde_json::json!({
                "id": m.id,
                "address": m.address,
                "region": m.region,
                "reachable": m.reachable,
                "error": m.error,
                "epoxy": epoxy,
            })
        })
        .collect();
    serde_json::json!({
        "cluster_id": format!("{:016x}", status.cluster_id),
        "answered_by": status.answered_by,
        "members": members,
    })
}

/// The status as a table, one member per row, after a header line.
pub fn status_table(status: &StatusResponse) -> String {
    const HEADER: [&str; 9] =
        ["ID", "ADDRESS", "REGION", "REACHABLE", "COMMITTED", "FAST", "SLOW", "EXECUTED", "IN-FLIGHT"];
    let rows: Vec<(Vec<String>, &MemberStatus)> = status
        .members
        .iter()
        .map(|m| {
            let counter = |f: fn(&mortar_proto::v1::EpoxyCounters) -> u64| {
                m.epoxy.as_ref().map_or_else(|| "-".to_string(), |e| f(e).to_string())
            };
            let cells = vec![
                m.id.to_string(),
                m.address.clone(),
                m.region.clone(),
                if m.reachable { "yes" } else { "no" }.to_string(),
                counter(|e| e.instances_committed),
                counter(|e| e.fast_path_commits),
                counter(|e| e.slow_path_commits),
                counter(|e| e.instances_executed),
                counter(|e| e.instances_in_flight),
            ];
            (cells, m)
        })
        .collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for (cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String], error: &str| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            // Text left-aligned, counters right-aligned.
            if i < 4 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("{cell:>w$}"));
            }
        }
        if !error.is_empty() {
            out.push_str("  ");
            out.push_str(&error.replace('\n', " "));
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = format!("cluster {:016x}, answered by node {}\n", status.cluster_id, status.answered_by);
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    out.push_str(&line(&header, "ERROR"));
    for (cells, m) in &rows {
        out.push_str(&line(cells, &m.error));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_proto::v1::EpoxyCounters;

    fn sample() -> StatusResponse {
        StatusResponse {
            cluster_id: 0xdead_beef,
            answered_by: 1,
            members: vec![
                MemberStatus {
                    id: 1,
                    address: "127.0.0.1:7100".into(),
                    region: "default".into(),
                    reachable: true,
                    error: String::new(),
                    epoxy: Some(EpoxyCounters {
                        instances_proposed: 12,
                        instances_committed: 10,
                        instances_executed: 9,
                        fast_path_commits: 8,
                        slow_path_commits: 2,
                        instances_in_flight: 1,
                    }),
                },
                MemberStatus {
                    id: 2,
                    address: "127.0.0.1:7101".into(),
                    region: "default".into(),
                    reachable: false,
                    error: "connection refused".into(),
                    epoxy: None,
                },
            ],
        }
    }

    #[test]
    fn members_table_has_one_row_per_node() {
        let member = |id: u32, state: &str, epoch, control: &str, ready| mortar_proto::v1::Member {
            id,
            address: format!("127.0.0.1:710{id}"),
            region: "default".into(),
            state: state.into(),
            epoch,
            control: control.into(),
            ready,
        };
        let members = MembersResponse {
            cluster_id: 0xdead_beef,
            answered_by: 2,
            control_leader: 1,
            applied_index: 7,
            members: vec![member(1, "active", 3, "voter", true), member(4, "dead", 0, "", false)],
        };
        let table = members_table(&members);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "cluster 00000000deadbeef, answered by node 2 (control-plane leader 1, applied index 7)"
        );
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(header, ["ID", "ADDRESS", "REGION", "STATE", "EPOCH", "CONTROL", "READY"]);
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row, ["1", "127.0.0.1:7101", "default", "active", "3", "voter", "yes"]);
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row, ["4", "127.0.0.1:7104", "default", "dead", "-", "-", "no"]);
        let json = members_json(&members);
        assert_eq!(json["members"][1]["state"], "dead");
        assert_eq!(json["cluster_id"], "00000000deadbeef");
    }

    #[test]
    fn table_has_one_row_per_member() {
        let table = status_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(lines[0], "cluster 00000000deadbeef, answered by node 1");
        assert!(lines[1].starts_with("ID  ADDRESS"), "{table}");
        assert!(lines[1].ends_with("IN-FLIGHT  ERROR"), "{table}");
        let row1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row1, ["1", "127.0.0.1:7100", "default", "yes", "10", "8", "2", "9", "1"]);
        let row2: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            row2,
            ["2", "127.0.0.1:7101", "default", "no", "-", "-", "-", "-", "-", "connection", "refused"]
        );
    }

    #[test]
    fn json_has_every_field() {
        let json = status_json(&sample());
        assert_eq!(json["cluster_id"], "00000000deadbeef");
        assert_eq!(json["answered_by"], 1);
        assert_eq!(json["members"][0]["epoxy"]["instances_proposed"], 12);
        assert_eq!(json["members"][0]["reachable"], true);
        assert_eq!(json["members"][1]["error"], "connection refused");
        assert!(json["members"][1]["epoxy"].is_null());
    }
}
