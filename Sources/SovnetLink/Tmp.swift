public enum LinkPlaceholderDeleteMe {}
