"""Plain-text building blocks: formatted figures and rows that the bot's i18n layer places into sentences."""
