"""Who the caller is (identity), how credentials prove it (basic, bearer) and what it may do (access)."""
