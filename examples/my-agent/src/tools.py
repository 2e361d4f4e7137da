from stella_sdk import tool

# The guide leaves `db` and `task_service` to you; this example's live in backend.py.
from .backend import db, task_service


@tool
async def search_database(query: str, limit: int = 5) -> dict:
    """Search the database for relevant information.

    Args:
        query: The search query
        limit: Maximum number of results

    Returns:
        Search results
    """
    # Your database search logic here
    results = await db.search(query, limit=limit)

    return {
        "found": len(results) > 0,
        "results": [
            {"title": r.title, "content": r.content}
            for r in results
        ]
    }


@tool
async def create_task(title: str, description: str) -> dict:
    """Create a new task in the task management system.

    Args:
        title: Task title
        description: Task description

    Returns:
        Created task details
    """
    task = await task_service.create(title=title, description=description)

    return {
        "task_id": task.id,
        "status": "created",
        "message": f"Task '{title}' created successfully"
    }
