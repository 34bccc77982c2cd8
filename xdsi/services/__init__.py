"""Protocol-neutral work shared by every web and SOAP transaction."""
