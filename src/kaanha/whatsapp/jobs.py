"""Names of the WhatsApp background jobs, here so that any domain can enqueue them without import cycles."""

INBOUND_EVENT_JOB = "whatsapp.inbound_event"
FETCH_MEDIA_JOB = "whatsapp.fetch_media"
MARK_READ_JOB = "whatsapp.mark_read"
