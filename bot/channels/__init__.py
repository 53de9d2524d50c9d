"""Where customers meet the bot: Telegram, the terminal, the live location of the technician."""
