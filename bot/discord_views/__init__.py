"""Discord-facing pieces of the bot: rendering, buttons, starting jobs, status updates."""
