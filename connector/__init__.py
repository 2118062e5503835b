"""repeat-sales: reads a CRM's purchase history and plans repeat-sales actions inside it."""
