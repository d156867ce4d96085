"""Files users send: what type they are (from their bytes), which of them Gemini takes, and how they are
kept for the conversation's later turns."""
