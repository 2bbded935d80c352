"""Job queues: the embedded one on the service's database, and procrastinate for scale-out."""

from service.queue.base import Handler, Job, JobKind, JobQueue, QueueUnavailableError

__all__ = ["Handler", "Job", "JobKind", "JobQueue", "QueueUnavailableError"]
