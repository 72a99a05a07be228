//! The jobs as operators see and steer them: the filtered list, one job's
//! detail with its image, retry (its image goes back to PROCESSING in the
//! same transaction), cancel, retry every failed job, and the figures of
//! the admin page.

use pictor_client::models::{JobDetail, JobList, JobStatus};

use super::{Images, ImagesError, ImagesResult, Page, view};
use crate::clock::Millis;
use crate::db::{self, Durability};
use crate::queue::JobId;

/// Filters of the job list.
pub use crate::db::jobs::JobFilter;

/// `(status, type, count)` of every job.
pub type JobCounts = Vec<(String, String, i64)>;

impl Images {
    /// A page of jobs, newest first; its `nextCursor` is the last job's id.
    ///
    /// # Errors
    /// A cursor that is not a job id; the database failed.
    pub async fn jobs(&self, filter: &JobFilter, page: Page) -> ImagesResult<JobList> {
        let window = page.window(|c| c.parse::<i64>().ok().map(JobId))?;
        let listed = db::jobs::list(&self.db.pool, filter, &window).await?;
        let next = listed.rows.last().map(|j| j.id.to_string());
        Ok(JobList {
            jobs: listed.rows.iter().map(view::job_summary).collect(),
            pagination: view::pagination(listed.total, page.limit, page.offset, listed.has_more, next),
        })
    }

    /// One job with its retry state and its image.
    ///
    /// # Errors
    /// [`ImagesError::NotFound`]; the database failed.
    pub async fn job(&self, id: JobId) -> ImagesResult<JobDetail> {
        let job = self.queue.get(id).await?.ok_or_else(|| ImagesError::NotFound(format!("job {id}")))?;
        let image = match &job.image_id {
            Some(image_id) => match self.find(image_id).await {
                Ok(image) => Some(image),
                Err(ImagesError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(view::job_detail(&job, image, self.now()))
    }

    /// Re-queues a FAILED or CANCELLED job with fresh attempts and puts its
    /// image back to PROCESSING, in one transaction.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn retry_job(&self, id: JobId) -> ImagesResult<JobDetail> {
        let mut tx = self.db.begin_write(Durability::Acknowledged).await?;
        let job = self.queue.requeue_in(&mut tx, id).await?;
        if let Some(image_id) = &job.image_id {
            db::images::mark_processing(&mut *tx, image_id, self.now()).await?;
        }
        tx.commit().await?;
        self.queue.wake();
        self.events.nudge();
        self.job(id).await
    }

    /// Cancels a PENDING or FAILED job.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn cancel_job(&self, id: JobId) -> ImagesResult<JobDetail> {
        self.queue.cancel(id).await?;
        self.events.nudge();
        self.job(id).await
    }

    /// Re-queues every job FAILED when it is called (a snapshot: jobs that
    /// fail again meanwhile wait for the next call); returns how many.
    ///
    /// # Errors
    /// A database failure.
    pub async fn retry_failed(&self) -> ImagesResult<u64> {
        let mut retried = 0;
        for id in db::jobs::ids_in_status(&self.db.pool, JobStatus::Failed).await? {
            match self.retry_job(id).await {
                Ok(_) => retried += 1,
                // Cancelled, retried or pruned by someone else meanwhile.
                Err(ImagesError::Queue(
                    crate::queue::QueueError::WrongState { .. } | crate::queue::QueueError::NotFound(_),
                )) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(retried)
    }

    /// `(status, type, count)` of every job, for the admin page.
    ///
    /// # Errors
    /// A database failure.
    pub async fn job_counts(&self) -> ImagesResult<JobCounts> {
        Ok(db::jobs::counts_by_status_and_type(&self.db.pool).await?)
    }

    /// `(minute, status, count)` of the jobs that ended COMPLETED or FAILED
    /// after `since`, minute 0 starting at `since`, for the admin page's chart.
    ///
    /// # Errors
    /// A database failure.
    pub async fn finished_per_minute(&self, since: Millis) -> ImagesResult<Vec<(i64, String, i64)>> {
        Ok(db::jobs::finished_per_minute(&self.db.pool, since).await?)
    }
}
