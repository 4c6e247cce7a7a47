"""Quick replies: saved answers, sent by their shortcut (`/thanks`) and filled in for each contact."""
