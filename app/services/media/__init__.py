"""Attachments (issue 14 part 1): every attachment of every message has a media row and a
stable id; `/api/v1/media/{id}` redirects to the live CDN URL (refreshed through the
Conversations API where Meta allows) or, when the operator archives media (MEDIA_ARCHIVE), a
background worker downloads the bytes and the endpoint serves them.

- `attachments`: media rows made with their messages;
- `serving`: what `/api/v1/media/{id}` answers;
- `storage`: where archived bytes live (a local directory or S3);
- `downloads`: the download worker (fetch, check, store), and purges.
"""
