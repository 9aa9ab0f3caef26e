use crate::replica::{Instance, Replica};
use crate::types::{Attributes, Ballot, Command, InstanceId, Status};

impl Replica {
    /// A decision: record it (it may be the first this replica hears of the instance) and let the
    /// executor run it when its dependencies allow.
    pub(crate) fn handle_commit(&mut self, id: InstanceId, attrs: Attributes, commands: Vec<Command>) {
        if self.executor.is_executed(id) {
            return;
        }
        let ballot = match self.instances.get(&id) {
            Some(instance) if instance.status == Status::Committed => {
                assert!(
                    instance.attrs == attrs && instance.commands == commands,
                    "agreement violated: instance={id} committed={:?} now={attrs:?}",
                    instance.attrs
                );
                return;
            }
            Some(instance) => instance.ballot,
            None => Ballot::initial(id.replica),
        };
        self.sample_commit_delay(id, ballot);
        self.abandon_lead(id);
        self.observe_keys(id, &commands, attrs.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::Committed,
            attrs,
            commands,
            matches_proposal: false,
            lead: None,
        };
        self.persist_instance(id, &instance);
        self.instances.insert(id, instance);
        self.counters.committed += 1;
        if id.replica == self.config.id {
            self.own_committed_max = self.own_committed_max.max(id.slot);
        }
        self.executor.on_committed(id);
        self.forget_recovery(id);
    }
}
