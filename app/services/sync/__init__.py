"""History from Meta's Conversations API: backfill (`fab backfill`, `POST
/api/v1/accounts/{id}/sync`) and gap detection (a periodic sweep, and checks of conversations
whose webhooks named a message the service does not have)."""
