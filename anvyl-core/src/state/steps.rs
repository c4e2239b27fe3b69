//! The step images each start's build made (see
//! [`crate::lifecycle::StepRecorder`]): recorded as the build names them,
//! so that a start killed mid-build leaves its record too, and forgotten
//! once the engine no longer has the image or it is no longer anvyl's to
//! take. A cleanup that owns the build cache removes only what is recorded
//! here — never an image it merely finds untagged.

use rusqlite::params;

use super::{StateError, StateStore};
use crate::ids::StartId;
use crate::lifecycle::MadeStep;
use crate::name::AgentName;

/// One recorded step image, with the start (its agent and host) that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Order of recording: a step is always recorded after its parent.
    pub seq: i64,
    /// The start whose build made it.
    pub start: StartId,
    /// That start's agent.
    pub agent: AgentName,
    /// That start's host; `None` if the start never resolved one.
    pub host: Option<String>,
    /// The engine that start went to (see [`crate::identity`]).
    pub engine: Option<crate::identity::RecordedEngine>,
    /// The image and the image it was built on, as the builder printed them.
    pub made: MadeStep,
}

impl StateStore {
    /// Records that `start`'s build made `made`.
    pub fn record_build_step(&self, start: &StartId, made: &MadeStep) -> Result<(), StateError> {
        self.conn()
            .execute(
                "INSERT INTO build_steps (start, image, parent) VALUES (?1, ?2, ?3)",
                params![start.as_str(), made.image, made.parent],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every recorded step image, in the order recorded. A record whose
    /// start or agent cannot be read is left out (and stays stored).
    pub fn build_steps(&self) -> Result<Vec<StepRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT b.seq, b.start, s.agent, s.host, b.image, b.parent, s.engine
                 FROM build_steps b JOIN starts s ON s.id = b.start ORDER BY b.seq",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<crate::identity::RecordedEngine>>(6)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, start, agent, host, image, parent, engine)| {
                Some(StepRecord {
                    seq,
                    start: StartId::from_stored(start),
                    agent: AgentName::new(agent).ok()?,
                    host,
                    engine,
                    made: MadeStep { image, parent },
                })
            })
            .collect())
    }

    /// Forgets the step record `seq`: its image is gone, or not anvyl's to take.
    pub fn forget_build_step(&self, seq: i64) -> Result<(), StateError> {
        self.conn()
            .execute("DELETE FROM build_steps WHERE seq = ?1", [seq])
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}
