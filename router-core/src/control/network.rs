//! Tenant networks: each has an id the workers index their topology by. Which local ports it
//! is attached to is published with the topology; its instance ports follow a move of its only
//! local port.

use super::capacity::{Plan, Pool};
use super::{ApplyError, ControlPlane, Program};
use crate::model::{NetworkSpec, Step};

impl Program for NetworkSpec {
    fn plan(cp: &ControlPlane, step: &Step<Self>, plan: &mut Plan) -> Result<(), ApplyError> {
        match (&step.before, &step.after) {
            (None, Some(_)) => plan.id(Pool::Networks),
            (Some(old), Some(new)) => {
                plan.shrink();
                if old.ports != new.ports {
                    for p in cp.model.ports_of_network(&new.name) {
                        cp.plan_port_neighbor(p, plan)?;
                    }
                }
                Ok(())
            }
            _ => {
                plan.shrink();
                Ok(())
            }
        }
    }

    fn program(
        cp: &mut ControlPlane,
        before: Option<&Self>,
        after: Option<&Self>,
    ) -> Result<(), ApplyError> {
        match (before, after) {
            (_, Some(spec)) => cp.install_network(spec, before),
            (Some(old), None) => {
                if let Some(id) = cp.networks.remove(&old.name) {
                    cp.dirty = true;
                    cp.publish_if_dirty();
                    cp.ids.release(&cp.qsbr, Pool::Networks, id);
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }
}

impl ControlPlane {
    fn install_network(
        &mut self,
        spec: &NetworkSpec,
        old: Option<&NetworkSpec>,
    ) -> Result<(), ApplyError> {
        if old.is_none() {
            let id = self.ids.alloc(&self.qsbr, Pool::Networks)?;
            self.networks.insert(spec.name.clone(), id);
        }
        self.dirty = true;
        // Local ports moved: instance ports that defaulted to the only port follow it.
        if old.is_some_and(|o| o.ports != spec.ports) {
            self.publish_if_dirty();
            let ports: Vec<_> = self.model.ports_of_network(&spec.name).cloned().collect();
            for p in ports {
                self.remove_port(&p);
                self.install_port(&p)?;
            }
        }
        Ok(())
    }
}
